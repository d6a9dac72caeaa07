"""The ready-to-run configs (.test/, config/examples/) plan what they say, in a dry run."""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import REPO, base_env, planned_jobs, snakemake
from mergelab.plan.experiment import load_experiment

CONFIGS = sorted((REPO / ".test").glob("*.yaml")) + sorted((REPO / "config" / "examples").glob("*.yaml"))


def test_there_are_configs_to_dry_run():
    names = {p.name for p in CONFIGS}
    assert {"merge-only.yaml", "evaluate-parents.yaml", "hub.yaml", "qwen2.5-7b-coder-math.yaml"} <= names


@pytest.mark.workflow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_dry_runs_to_its_plan(path, tmp_path, monkeypatch):
    shutil.copytree(REPO / "config", tmp_path / "config")  # raw mergekit files are named from the workdir
    env = base_env(tmp_path)
    env["HF_TOKEN"] = "hf_dry_run_only"  # planning a push needs a token; a dry run sends nothing
    proc = snakemake(tmp_path, path, "-n", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout)
    monkeypatch.setenv("HF_TOKEN", env["HF_TOKEN"])
    exp = load_experiment(yaml.safe_load(path.read_text()), str(path), workdir=tmp_path)
    assert sorted(w.split("model=")[1] for w in jobs.get("merge", [])) == sorted(exp.merges)
    harness = jobs.get("harness_eval", []) + jobs.get("harness_eval_samples", [])
    assert len(harness) == len(exp.harness.models) * len(exp.harness.tasks)
    assert len(jobs.get("holmes_eval", [])) == len(exp.holmes.models)
    assert len(jobs.get("fetch", [])) == sum(m.kind == "hub" for m in exp.models.values())
    assert len(jobs.get("push", [])) == len(exp.hub.repos)


@pytest.mark.workflow
def test_typing_a_per_model_rule_as_a_target_names_the_target(tmp_path):
    proc = snakemake(tmp_path, REPO / ".test" / "merge-only.yaml", "merge", "-n")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "mergelab: `merge` is the rule that makes one file per model; the target that makes them all is "
        "`merges` (snakemake merges)"
    )
