"""Harness stage: lm-eval through the workflow on tiny models and the demo tasks."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import torch

from conftest import (
    REPO,
    UNKNOWN_ARCHITECTURE,
    bad_task_folder,
    base_env,
    planned_jobs,
    snakemake,
    unloadable_copy,
    write_config,
)
from mergelab.analysis.stats import aggregation, metric_value
from mergelab.evaluate.harness_model import run_with_oom_retry

TASKS = ["mergelab_arithmetic", "mergelab_categories", "mergelab_text_ppl"]
DATA = REPO / "workflow" / "tasks" / "mergelab_demo" / "data"


# ---------------------------------------------------------------- OOM retry (unit)


def test_oom_retry_halves_until_it_fits():
    calls = []

    def run(bs):
        calls.append(bs)
        if bs > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"ok": bs}

    result, used, failed = run_with_oom_retry(run, 32)
    assert result == {"ok": 4} and used == 4 and failed == [32, 16, 8] and calls == [32, 16, 8, 4]


def test_oom_retry_from_auto_starts_at_half_the_detected_size():
    def run(bs):
        if bs == "auto" or bs > 12:
            raise RuntimeError("CUDA error: out of memory")
        return bs

    _, used, failed = run_with_oom_retry(run, "auto", detected=lambda: 48)
    assert failed == ["auto", 24] and used == 12


def test_other_errors_are_not_retried():
    def run(bs):
        raise ValueError("bad data")

    with pytest.raises(ValueError):
        run_with_oom_retry(run, 8)


def test_backends_are_one_registry_that_the_schema_offers(monkeypatch):
    """harness.settings.backend: the schema's enum is the registry's keys; a job builds each
    backend's model arguments from its entry, never by falling through to one of them."""
    import yaml

    from conftest import REPO, harness_settings
    from mergelab.evaluate.harness_model import BACKENDS, Model

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["settings"]["properties"]["backend"]["enum"] == list(BACKENDS)
    s = harness_settings(backend="vllm", dtype="bfloat16", batch_size=1, max_batch_size=8)
    args = Model("/m", s, "cuda", gpus=2).args
    assert args["tensor_parallel_size"] == 2 and args["pretrained"] == "/m"
    monkeypatch.setitem(BACKENDS, "other", BACKENDS["vllm"].__class__("other", lambda *a: {"x": 1}, loads_once=False))
    m = Model("/m", replace(s, backend="other"), "cpu", gpus=1)
    assert m.args == {"x": 1} and m.backend.name == "other"


def test_oom_at_batch_size_one_gives_up_clearly():
    def run(bs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(Exception, match="even with batch size 1"):
        run_with_oom_retry(run, 2)


# ---------------------------------------------------------------- workflow


def harness_cfg(tiny_models, **harness):
    h = {"tasks": list(TASKS), "settings": {"batch_size": 8, "bootstrap_iters": 100}}
    h.update(harness)
    return {
        "models": {n: {"path": str(p)} for n, p in tiny_models.items()},
        "merges": [{"name": "ab", "models": ["alpha", "beta"], "methods": ["linear"], "dtype": "float32"}],
        "harness": h,
    }


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_models):
    wd = tmp_path_factory.mktemp("harness")
    cfg = harness_cfg(tiny_models, task_settings={"mergelab_categories": {"log_samples": True}})
    path = write_config(wd, cfg)
    proc = snakemake(wd, path, check=True)
    return wd, cfg, proc


def rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.mark.workflow
def test_every_model_on_every_task(evaluated, tiny_models):
    wd, _, _ = evaluated
    data_rows = {
        "mergelab_arithmetic": len(rows("arithmetic_test.jsonl")),
        "mergelab_categories": len(rows("categories_test.jsonl")),
        "mergelab_text_ppl": len(rows("text_test.jsonl")),
    }
    metrics = {
        "mergelab_arithmetic": ["exact_match,first-number"],
        "mergelab_categories": ["acc,none", "acc_norm,none"],
        "mergelab_text_ppl": ["word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"],
    }
    for model in ["base", "alpha", "beta", "ab_linear_w1"]:
        for task in TASKS:
            res = json.loads((wd / "results" / "harness" / model / f"{task}.json").read_text())
            for key in ("results", "configs", "versions", "n-shot", "n-samples", "config", "higher_is_better"):
                assert key in res, (model, task, key)
            r = res["results"][task]
            for metric in metrics[task]:
                name, filt = metric.split(",")
                assert isinstance(r[metric], float), (model, task, metric)
                assert f"{name}_stderr,{filt}" in r
            assert res["n-samples"][task]["effective"] == data_rows[task]
            # the per-item results, always: lm-eval's value recomputed from them
            items = pd.read_parquet(wd / "results" / "harness" / model / f"{task}.items.parquet")
            for metric in metrics[task]:
                name, filt = metric.split(",")
                sel = items[(items["task"] == task) & (items["metric"] == name) & (items["filter"] == filt)]
                assert sorted(sel["doc_id"]) == list(range(data_rows[task])), (model, task, metric)
                again = metric_value(aggregation(name), sel["value"], sel["weight"])
                assert again == pytest.approx(r[metric], rel=1e-9), (model, task, metric)
            cfg = res["config"]
            path = tiny_models[model] if model in tiny_models else wd / "results" / "models" / model
            assert f"pretrained={path}" in cfg["model_args"] and "dtype=" in cfg["model_args"]
            assert cfg["batch_size"] == 8 and cfg["model_dtype"] == "torch.float32"
            assert res["n-shot"][task] == 0
            assert res["mergelab"]["model"] == model and res["mergelab"]["batch_size_used"] == 8


@pytest.mark.workflow
def test_a_finished_campaign_moved_elsewhere_reruns_nothing(evaluated, tmp_path):
    """What decides a rerun (params, inputs) holds no absolute path of the campaign's folder."""
    wd, cfg, _ = evaluated
    moved = tmp_path / "moved"
    shutil.copytree(wd, moved, symlinks=True)  # keeps the files' times, as cp -a or rsync -a would
    proc = snakemake(moved, write_config(moved, cfg, "same.yaml"), "-n", check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


@pytest.mark.workflow
def test_samples_only_where_asked(evaluated):
    wd, _, _ = evaluated
    out = wd / "results" / "harness" / "alpha"
    samples = [json.loads(line) for line in (out / "mergelab_categories.samples.jsonl").read_text().splitlines()]
    assert len(samples) == len(rows("categories_test.jsonl")) and all(
        s["task"] == "mergelab_categories" for s in samples
    )
    assert not (out / "mergelab_arithmetic.samples.jsonl").exists()


@pytest.mark.workflow
def test_bare_lm_eval_gives_the_same_numbers(evaluated, tiny_models, tmp_path):
    wd, _, _ = evaluated
    out = tmp_path / "bare"
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_models['alpha']},dtype=auto",
        "--tasks",
        ",".join(TASKS),
        "--include_path",
        str(REPO / "workflow" / "tasks"),
        "--device",
        "cpu",
        "--batch_size",
        "8",
        "--output_path",
        str(out),
    ]
    proc = subprocess.run(cmd, env=base_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bare = json.loads(next(out.rglob("results_*.json")).read_text())
    for task in TASKS:
        ours = json.loads((wd / "results" / "harness" / "alpha" / f"{task}.json").read_text())["results"][task]
        theirs = bare["results"][task]
        numeric = [k for k, v in theirs.items() if isinstance(v, float) and "stderr" not in k]
        assert numeric
        for k in numeric:
            assert ours[k] == pytest.approx(theirs[k], rel=1e-6), (task, k)


@pytest.mark.workflow
def test_rerun_plans_exactly_the_changed_pairs(evaluated, tiny_models):
    wd, cfg, _ = evaluated
    out = snakemake(wd, write_config(wd, cfg, "same.yaml"), "-n", check=True)
    assert "Nothing to be done" in out.stdout + out.stderr

    more = copy.deepcopy(cfg)
    more["harness"]["tasks"].append("mergelab_demo")
    jobs = planned_jobs(snakemake(wd, write_config(wd, more, "more.yaml"), "-n", check=True).stdout)
    assert sorted(jobs["harness_eval"]) == sorted(
        f"model={m}, task=mergelab_demo" for m in ["base", "alpha", "beta", "ab_linear_w1"]
    )
    assert "merge" not in jobs and "harness_eval_samples" not in jobs

    shots = copy.deepcopy(cfg)
    shots["harness"]["task_settings"]["mergelab_arithmetic"] = {"num_fewshot": 2}
    jobs = planned_jobs(snakemake(wd, write_config(wd, shots, "shots.yaml"), "-n", check=True).stdout)
    assert sorted(jobs["harness_eval"]) == sorted(
        f"model={m}, task=mergelab_arithmetic" for m in ["base", "alpha", "beta", "ab_linear_w1"]
    )
    assert set(jobs) == {"harness_eval", "organize", "plot", "all"}


@pytest.mark.workflow
def test_evaluations_target_merges_only_what_it_needs(evaluated):
    wd, cfg, _ = evaluated
    only = copy.deepcopy(cfg)
    only["evaluation"] = {"models": ["alpha"]}
    only["merges"][0]["methods"] = ["linear", "karcher"]  # a merge nobody evaluates
    out = snakemake(wd, write_config(wd, only, "only.yaml"), "evaluations", "-n", check=True)
    assert "Nothing to be done" in out.stdout + out.stderr
    out = snakemake(wd, write_config(wd, only, "only.yaml"), "-n", check=True).stdout
    assert planned_jobs(out).get("merge") == ["model=ab_karcher"]


@pytest.mark.workflow
def test_unknown_task_fails_before_any_job(tmp_path, tiny_models):
    cfg = harness_cfg(tiny_models, tasks=["mergelab_categories", "gsm8kk"])
    proc = snakemake(tmp_path, write_config(tmp_path, cfg))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mergelab: ") and "harness.tasks[1]: unknown lm-eval task 'gsm8kk'" in last
    assert "gsm8k" in last.split("did you mean", 1)[1]
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_broken_inputs_fail_clearly_and_others_finish(tmp_path, tiny_models):
    broken = unloadable_copy(tiny_models["alpha"], tmp_path / "broken")
    tasks_dir = bad_task_folder(tmp_path / "mytasks")
    cfg = {
        "models": {"base": {"path": str(tiny_models["base"])}, "broken": {"path": str(broken)}},
        "harness": {
            "tasks": ["mergelab_categories", "my_bad_task"],
            "include_path": ["mytasks"],
            "settings": {"batch_size": 8},
        },
    }
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "--keep-going")
    assert proc.returncode != 0
    err = proc.stderr
    assert f"model type `{UNKNOWN_ARCHITECTURE}` but Transformers does not recognize" in err
    assert f"mergelab: lm-eval could not load task 'my_bad_task' (data: {tasks_dir / 'bad.jsonl'}): ArrowInvalid" in err
    assert "Traceback" not in err
    assert (tmp_path / "results" / "harness" / "base" / "mergelab_categories.json").is_file()
    assert not (tmp_path / "results" / "harness" / "broken" / "mergelab_categories.json").exists()
    assert not (tmp_path / "results" / "harness" / "base" / "my_bad_task.json").exists()


# ---------------------------------------------------------------- per-item results (unit)


def test_item_rows_keep_numbers_and_corpus_pairs_and_leave_texts_out(tmp_path):
    import pandas as pd

    from mergelab.evaluate.items import ITEM_COLUMNS, item_rows, write_items

    samples = {
        "cats": [
            {"doc_id": 0, "filter": "none", "metrics": ["acc", "acc_norm"], "acc": 1.0, "acc_norm": True, "doc": {}},
            {"doc_id": 1, "filter": "none", "metrics": ["acc", "acc_norm"], "acc": 0.0, "acc_norm": 0},
        ],
        "ppl": [{"doc_id": 3, "filter": "none", "metrics": ["word_perplexity"], "word_perplexity": [-12.5, 4]}],
        "mt": [{"doc_id": 0, "filter": "none", "metrics": ["bleu"], "bleu": ["a ref", "a pred"]}],
    }
    rows, left_out = item_rows(samples)
    assert left_out == ["mt: bleu"]
    assert [(r["task"], r["doc_id"], r["metric"], r["value"], r["weight"]) for r in rows] == [
        ("cats", 0, "acc", 1.0, 1.0),
        ("cats", 0, "acc_norm", 1.0, 1.0),
        ("cats", 1, "acc", 0.0, 1.0),
        ("cats", 1, "acc_norm", 0.0, 1.0),
        ("ppl", 3, "word_perplexity", -12.5, 4.0),
    ]
    write_items(rows, tmp_path / "x.items.parquet")
    back = pd.read_parquet(tmp_path / "x.items.parquet")
    assert list(back.columns) == ITEM_COLUMNS and len(back) == 5 and back["doc_id"].dtype == "int64"
    write_items([], tmp_path / "empty.items.parquet")  # a skipped evaluation: the columns only
    empty = pd.read_parquet(tmp_path / "empty.items.parquet")
    assert list(empty.columns) == ITEM_COLUMNS and empty.empty
    assert dict(empty.dtypes.astype(str)) == dict(back.dtypes.astype(str))
