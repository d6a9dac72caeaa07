"""storage.keep_merges (issue 17): a merge's weights are deleted once every job that reads them
has finished; its record stays; a finished campaign reruns nothing; a merge made again has the
bytes its results were computed from."""

from __future__ import annotations

import json
import re

import pytest

from conftest import fake_model_dir, planned_jobs, snakemake, snakemake_together, write_config
from mergelab.merging.storage import digests
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment

# C is a merge of AB and base: AB, read by C, keeps its weights; C and BD lose theirs
AB, C, BD = "ab_linear_w0.5", "C_slerp_t0.5", "bd_linear_w0.5"


def cfg_for(models: dict, keep: str) -> dict:
    return {
        "models": {n: {"path": str(p)} for n, p in models.items()},
        "merges": [
            {"name": "ab", "models": ["alpha", "beta"], "methods": ["linear"], "parameters": {"weight": 0.5}},
            {"name": "C", "models": ["ab", "base"], "methods": ["slerp"], "parameters": {"t": 0.5}},
            {"name": "bd", "models": ["beta", "base"], "methods": ["linear"], "parameters": {"weight": 0.5}},
        ],
        "evaluation": {"models": ["ab", "C", "bd"]},
        "harness": {
            "tasks": ["mergelab_categories"],
            "settings": {"limit": 8, "batch_size": 8, "bootstrap_iters": 0},
        },
        "holmes": {"activate": False},
        "storage": {"keep_merges": keep},
    }


def files_under(root) -> set:
    return {p.relative_to(root).as_posix() for p in (root / "results").rglob("*") if p.is_file()}


# ---------------------------------------------------------------- the plan


@pytest.fixture()
def fake_models(tmp_path):
    return {n: fake_model_dir(tmp_path / "models" / n) for n in ("base", "alpha", "beta")}


def test_which_merges_lose_their_weights(tmp_path, fake_models):
    def exp(keep):
        return load_experiment(cfg_for(fake_models, keep), "cfg.yaml", workdir=tmp_path)

    assert exp("all").storage.released == () and f"results/models/{AB}" in exp("all").targets("merges")
    none = exp("none")
    assert none.storage.released == (C, BD)  # AB is read by C: it keeps its weights
    assert none.targets("merges") == [
        f"results/models/{AB}",
        f"results/records/{C}",
        f"results/records/{BD}",
        "results/merges.tsv",
    ]
    with pytest.raises(ConfigError, match=r"cfg.yaml: storage.keep_merges: pushed deletes .* no merge is pushed"):
        exp("pushed")
    bad = cfg_for(fake_models, "some")
    with pytest.raises(ConfigError, match="storage.keep_merges"):
        load_experiment(bad, "cfg.yaml", workdir=tmp_path)


@pytest.mark.workflow
def test_readers_of_deleted_weights_run_before_new_merges(tmp_path, fake_models):
    """The dry run: merge_released makes both merges (temp), merge_record reads each once; the
    jobs reading merged weights have a higher priority than the merges."""
    wd = tmp_path / "wd"
    proc = snakemake(wd, write_config(wd, cfg_for(fake_models, "none")), "-n", check=True)
    jobs = planned_jobs(proc.stdout)
    assert sorted(jobs["merge_released"]) == sorted([f"model={C}", f"model={BD}"]) and jobs["merge"] == [f"model={AB}"]
    assert sorted(jobs["merge_record"]) == sorted([f"model={C}", f"model={BD}"])
    blocks = [b for b in re.split(r"^\[.*\]$", proc.stdout, flags=re.M) if "rule " in b]
    prio = {re.search(r"rule (\w+):", b).group(1): "priority: 1" in b for b in blocks}
    assert prio["harness_eval"] and prio["merge_record"] and not prio["merge_released"]
    kept = snakemake(wd, write_config(wd, cfg_for(fake_models, "all")), "-n", check=True)
    assert "merge_released" not in planned_jobs(kept.stdout) and "priority: 1" not in kept.stdout


# ---------------------------------------------------------------- a campaign


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory, tiny_models):
    """The same campaign with keep_merges all and none, run at once (snakemake_together)."""
    out = {}
    for keep in ("all", "none"):
        wd = tmp_path_factory.mktemp(f"keep-{keep}")
        out[keep] = (wd, write_config(wd, cfg_for(tiny_models, keep)))
    snakemake_together(*out.values(), timeout=1200)
    return out


@pytest.mark.workflow
def test_none_deletes_exactly_the_weights(campaigns):
    (wa, _), (wn, _) = campaigns["all"], campaigns["none"]
    kept, deleted = files_under(wa), files_under(wn)
    weights = {f for f in kept if f.startswith((f"results/models/{C}/", f"results/models/{BD}/"))}
    assert weights and not any(f.startswith("results/models/") and f not in kept - weights for f in deleted)
    records = {f for f in deleted if f.startswith("results/records/")}
    expected = {
        f"results/records/{m}/{n}"
        for m in (C, BD)
        for n in ("README.md", "mergekit_config.yml", "weights.json", ".snakemake_timestamp")
    }
    assert records == expected
    assert deleted - records == kept - weights  # every other file is there
    for m in (C, BD):
        rec = wn / f"results/records/{m}"
        recorded = json.loads((rec / "weights.json").read_text())["files"]
        made = digests(wa / f"results/models/{m}")
        assert set(recorded) == set(made) and ".snakemake_timestamp" not in made
        # the same bytes, but for the card and mergekit config of C, which name AB by its absolute path
        assert {f: v for f, v in recorded.items() if f.endswith((".safetensors", ".json"))} == {
            f: v for f, v in made.items() if f.endswith((".safetensors", ".json"))
        }
        config = (rec / "mergekit_config.yml").read_text().replace(str(wn), str(wa))
        assert config == (wa / f"results/models/{m}/mergekit_config.yml").read_text()
        a = json.loads((wa / f"results/harness/{m}/mergelab_categories.json").read_text())["results"]
        n = json.loads((wn / f"results/harness/{m}/mergelab_categories.json").read_text())["results"]
        assert a == n  # the evaluations read the same weights


@pytest.mark.workflow
def test_a_finished_campaign_reruns_nothing_and_a_merge_comes_back_byte_identical(campaigns):
    wd, path = campaigns["none"]
    proc = snakemake(wd, path, "-n", check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr

    snakemake(wd, path, f"results/models/{C}", check=True)  # only C is made again
    record = json.loads((wd / f"results/records/{C}/weights.json").read_text())
    assert digests(wd / f"results/models/{C}") == record["files"]
    assert "byte-identical to its record" in (wd / f"logs/merge/{C}.log").read_text()
    proc = snakemake(wd, path, "-n", check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr  # what read C does not rerun

    # a changed parameter still reruns exactly its dependants
    cfg = load_cfg(path)
    cfg["merges"][1]["parameters"]["t"] = 0.25
    proc = snakemake(wd, write_config(wd, cfg, "changed.yaml"), "-n", check=True)
    jobs = planned_jobs(proc.stdout)
    c2 = "model=C_slerp_t0.25"
    assert jobs["merge_released"] == [c2] and "merge" not in jobs
    assert jobs["merge_record"] == [c2] and jobs["harness_eval"] == [f"{c2}, task=mergelab_categories"]

    # a new merge of BD, whose weights are gone: one line, before any job
    cfg = load_cfg(path)
    cfg["merges"].append({"name": "E", "models": ["bd", "alpha"], "methods": ["linear"]})
    proc = snakemake(wd, write_config(wd, cfg, "reads-bd.yaml"), "-n")
    assert proc.returncode != 0
    assert f"mergelab: merge E_linear_w1 reads {BD}, whose weights were deleted (storage.keep_merges); " in proc.stderr
    assert f"`snakemake results/models/{BD}`" in proc.stderr


def load_cfg(path):
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.workflow
def test_pushed_deletes_a_merge_once_pushed_and_its_card_comes_from_its_record(tmp_path, tiny_models):
    import hashlib

    from test_hub import TOKEN, hub_env, push_cfg

    from hubstub import HubStub

    stub = HubStub(token=TOKEN).start()
    try:
        wd, env = tmp_path / "wd", hub_env(tmp_path, stub)
        cfg = push_cfg(tiny_models)
        cfg["storage"] = {"keep_merges": "pushed"}
        cfg["evaluation"] = {"models": ["ab"]}  # the pushed merge's results reach its card; no parent's are read
        path = write_config(wd, cfg)
        snakemake(wd, path, env=env, check=True, timeout=1200)
        mid = "ab_task_arithmetic_w0.5"
        repo = f"me/{mid}"
        assert not (wd / f"results/models/{mid}").exists()
        record = json.loads((wd / f"results/records/{mid}/weights.json").read_text())
        pushed = json.loads((wd / f"results/hub/{mid}.json").read_text())["commit_id"]
        for name, entry in record["files"].items():  # what was pushed is what was recorded
            assert hashlib.sha256(stub.file(repo, name, pushed)).hexdigest() == entry["sha256"], name
        # the results were added to the card after the weights were gone: from the record's card
        assert (wd / f"results/hub/results/{mid}.json").is_file()
        assert "## Evaluation (mergelab)" in stub.file(repo, "README.md").decode()
        proc = snakemake(wd, path, "-n", env=env, check=True)
        assert "Nothing to be done" in proc.stdout + proc.stderr
    finally:
        stub.stop()
