"""The sanity check in the workflow (issue 17): a collapsed merge is caught before its
evaluations, which (sanity.on_fail: skip) load nothing; the tables and the leaderboard say
broken, with the reason; a healthy merge is evaluated as usual."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import snakemake_together, write_config
from mergelab.evaluate.items import ITEM_COLUMNS

HARNESS = {"tasks": ["mergelab_arithmetic"], "settings": {"limit": 4, "batch_size": 4, "bootstrap_iters": 0}}


def sanity_config(tiny_models, **sanity):
    return {
        "models": {n: {"path": str(p)} for n, p in tiny_models.items()},
        "merges": [
            {"name": "lin", "models": ["alpha", "beta"], "methods": ["linear"], "dtype": "float32"},
            {  # task vectors scaled by a huge factor: finite weights, a collapsed model
                "name": "boom",
                "models": ["alpha", "beta"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "parameters": {"weight": 500.0},
                "dtype": "float32",
            },
        ],
        "evaluation": {"models": ["lin", "boom"]},
        "harness": HARNESS,
        "holmes": {"activate": False},
        "sanity": {"activate": True, **sanity},
    }


def _merge_ids(wd):
    rows = pd.read_csv(wd / "results/merges.tsv", sep="\t")
    return {r: rows[rows["recipe"] == r]["model"].iloc[0] for r in ("lin", "boom")}


def stop_config(tiny_models):
    cfg = sanity_config(tiny_models, on_fail="stop")
    cfg["merges"] = cfg["merges"][1:]
    cfg["evaluation"] = {"models": ["boom"]}
    return cfg


def per_model_config(tiny_models):
    cfg = sanity_config(tiny_models)
    cfg["merges"] = [m for m in cfg["merges"] if m["name"] == "boom"]
    cfg["evaluation"] = {"models": ["boom"]}
    cfg["harness"] = {
        **HARNESS,
        "tasks": PER_MODEL_TASKS,
        "jobs": "per_model",
        "task_settings": {PER_MODEL_TASKS[1]: {"log_samples": True}},
    }
    return cfg


PER_MODEL_TASKS = ["mergelab_arithmetic", "mergelab_categories"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models):
    """The three campaigns of this module, each in its own workdir, run at once (snakemake_together):
    name -> (workdir, finished snakemake process)."""
    plan = {
        "skip": (sanity_config(tiny_models), "tables"),
        "stop": (stop_config(tiny_models), "evaluations"),
        "per_model": (per_model_config(tiny_models), "tables"),
    }
    wds = {name: tmp_path_factory.mktemp(f"sanity-{name}") for name in plan}
    procs = snakemake_together(
        *((wds[n], write_config(wds[n], cfg), target) for n, (cfg, target) in plan.items()), check=False, timeout=1200
    )
    return {n: (wds[n], proc) for n, proc in zip(plan, procs)}


def _succeeded(proc):
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"


@pytest.mark.workflow
def test_broken_merge_is_skipped_and_shown_broken(runs):
    wd, proc = runs["skip"]
    _succeeded(proc)
    ids = _merge_ids(wd)
    lin, boom = ids["lin"], ids["boom"]

    checks = {m: json.loads((wd / f"results/checks/{m}.json").read_text()) for m in (lin, boom, "alpha", "beta")}
    assert checks[lin]["status"] == "ok" and checks[lin]["reasons"] == []
    assert checks["alpha"]["status"] == "ok" and checks["alpha"]["perplexity"] > 0  # the parents' reference
    assert checks[boom]["status"] == "broken" and checks[boom]["on_fail"] == "skip"
    reason = checks[boom]["reasons"][0]
    assert reason.startswith(("perplexity exploded: ", "perplexity is not finite", "forward pass gives")), reason
    assert (wd / f"benchmarks/sanity_check/{boom}.tsv").is_file() and (wd / f"logs/sanity_check/{boom}.log").is_file()

    # the broken merge's evaluation loaded nothing: its log says so, and lm-eval never ran
    log = (wd / f"logs/harness_eval/{boom}/mergelab_arithmetic.log").read_text()
    assert "skipped: " in log and "the model is not loaded" in log
    assert "evaluating" not in log and "lm_eval" not in log
    res = json.loads((wd / f"results/harness/{boom}/mergelab_arithmetic.json").read_text())
    assert res["results"] == {} and res["mergelab"]["skipped"] is True
    assert "evaluating" in (wd / f"logs/harness_eval/{lin}/mergelab_arithmetic.log").read_text()

    harness = pd.read_csv(wd / "results/tables/harness.csv")
    assert set(harness[harness["model"] == boom]["status"]) == {"broken"}
    assert harness[harness["model"] == boom]["value"].isna().all()  # never a zero
    assert set(harness[harness["model"] == lin]["status"]) == {"ok"}
    board = (wd / "results/tables/leaderboard.md").read_text()
    assert f"| {boom} | merge (broken) | broken |" in board
    assert f"- {boom}: {reason}" in board


@pytest.mark.workflow
def test_on_fail_stop_fails_the_check_with_one_line(runs):
    wd, proc = runs["stop"]
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mergelab: merge boom_")]
    assert len(lines) == 1 and " is broken: " in lines[0] and "(sanity.on_fail: stop)" in lines[0], proc.stderr[-3000:]
    assert not list((wd / "results/harness").glob("*/*.json")) if (wd / "results/harness").exists() else True


@pytest.mark.workflow
def test_per_model_job_of_a_broken_merge_writes_every_task_skipped(runs):
    """harness.jobs: per_model: the one job of a broken merge loads nothing and writes each
    task's JSON marked skipped, with its own task name; the tables say broken for each."""
    wd, proc = runs["per_model"]
    _succeeded(proc)
    tasks = PER_MODEL_TASKS
    boom = pd.read_csv(wd / "results/merges.tsv", sep="\t")["model"].iloc[0]

    log = (wd / f"logs/harness_eval_model/{boom}.log").read_text()
    assert "skipped: " in log and "the model is not loaded" in log and "evaluating" not in log
    for task in tasks:
        res = json.loads((wd / f"results/harness/{boom}/{task}.json").read_text())
        assert res["results"] == {} and res["mergelab"]["skipped"] is True and res["mergelab"]["task"] == task
    assert (wd / f"results/harness/{boom}/{tasks[1]}.samples.jsonl").read_text() == ""
    for task in tasks:  # the per-item results: the columns, no rows
        items = pd.read_parquet(wd / f"results/harness/{boom}/{task}.items.parquet")
        assert items.empty and list(items.columns) == ITEM_COLUMNS
    harness = pd.read_csv(wd / "results/tables/harness.csv")
    rows = harness[harness["model"] == boom]
    assert set(rows["task"]) >= set(tasks) and set(rows["status"]) == {"broken"} and rows["value"].isna().all()
