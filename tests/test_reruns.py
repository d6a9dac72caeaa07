"""Snakemake reruns exactly what a config change made stale."""

from __future__ import annotations

import copy
import re

import pytest

from conftest import planned_jobs, planned_merges, snakemake, write_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def done(tmp_path_factory, tiny_models):
    wd = tmp_path_factory.mktemp("reruns")
    cfg = {
        "models": {n: {"path": str(p)} for n, p in tiny_models.items()},
        "merges": [
            {"name": "r1", "models": ["alpha", "beta"], "methods": ["linear"], "dtype": "float32"},
            {
                "name": "r2",
                "models": ["alpha", "beta"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "dtype": "float32",
            },
        ],
    }
    path = write_config(wd, cfg)
    snakemake(wd, path, check=True)
    return wd, cfg


def dry_run(wd, cfg, name):
    path = write_config(wd, cfg, name)
    proc = snakemake(wd, path, "-n", check=True)
    return proc.stdout + proc.stderr


def test_nothing_to_do_when_nothing_changed(done):
    wd, cfg = done
    out = dry_run(wd, cfg, "same.yaml")
    assert "Nothing to be done" in out
    assert planned_merges(out) == set()


def test_changing_a_setting_reruns_exactly_that_merge(done):
    wd, cfg = done
    cfg = copy.deepcopy(cfg)
    cfg["merges"][1]["dtype"] = "float16"  # not part of the id: the same merge, made differently
    out = dry_run(wd, cfg, "dtype.yaml")
    assert planned_merges(out) == {"r2_task_arithmetic_w0.5"}
    assert "Params have changed since last execution" in out
    assert set(planned_jobs(out)) == {"merge", "merges_table", "all"}


def test_changing_a_parameter_plans_only_the_new_merge(done):
    wd, cfg = done
    cfg = copy.deepcopy(cfg)
    cfg["merges"][0]["parameters"] = {"weight": {"alpha": 0.25, "beta": 0.75}}
    out = dry_run(wd, cfg, "weight.yaml")
    assert planned_merges(out) == {"r1_linear_w0.25-0.75"}
    assert "demo_models" not in planned_jobs(out)


def test_adding_a_method_adds_exactly_its_jobs(done):
    wd, cfg = done
    cfg = copy.deepcopy(cfg)
    cfg["merges"][1]["methods"] = ["task_arithmetic", "ties", "dare_ties"]
    cfg["merges"][1]["seeds"] = [0, 3]
    out = dry_run(wd, cfg, "methods.yaml")
    assert planned_merges(out) == {
        "r2_ties_d0.5_w0.5",
        "r2_dare_ties_d0.5_w0.5_s0",
        "r2_dare_ties_d0.5_w0.5_s3",
    }


def test_rebuilt_parent_reruns_its_merges(done, tmp_path):
    wd, cfg = done
    out = dry_run(wd, cfg, "same2.yaml")
    assert planned_merges(out) == set()
    # a model directory that changes (a new file in it) makes the merges reading it stale
    alpha = cfg["models"]["alpha"]["path"]
    import os
    import time

    later = time.time() + 5
    os.utime(alpha, (later, later))
    try:
        out = dry_run(wd, cfg, "same3.yaml")
        assert planned_merges(out) == {"r1_linear_w1", "r2_task_arithmetic_w0.5"}
    finally:
        os.utime(alpha, None)


def test_a_bumped_rule_version_reruns_exactly_its_jobs_and_their_dependants(default_run, tmp_path):
    """Issue 27: a change that alters what a rule's jobs compute bumps its version (the rule table);
    the finished default campaign then plans exactly that rule's jobs, and the tables and figures
    that read them. A copy of the code without the bump (a moved checkout: new script times,
    Snakemake's code trigger off in profiles/default) plans nothing."""
    import shutil
    import subprocess

    from conftest import REPO, SNAKEMAKE, base_env

    wd, _ = default_run
    code = tmp_path / "code"
    code.mkdir()
    for part in ("Snakefile", "workflow", "scripts", "profiles"):
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy2)(REPO / part, code / part)

    def dry_run():
        cmd = SNAKEMAKE + ["-n", "--snakefile", str(code / "Snakefile"), "--directory", str(wd), "--cores", "2"]
        proc = subprocess.run(cmd, cwd=wd, env=base_env(wd), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    assert "Nothing to be done" in dry_run()
    table = code / "scripts" / "mergelab" / "plan" / "rules.py"
    text = table.read_text()
    bumped = re.sub(r'(\n    Rule\("holmes_eval", .*)\),\n', r"\1, version=2),\n", text, count=1)
    assert bumped != text
    table.write_text(bumped)
    out = dry_run()
    jobs = planned_jobs(out)
    probed = sorted(p.parent.name for p in (wd / "results" / "holmes").glob("*/scores.csv"))
    assert set(jobs) == {"holmes_eval", "organize", "plot", "all"}, jobs
    assert sorted(w.removeprefix("model=") for w in jobs["holmes_eval"]) == probed
    assert "'holmes_eval v2'" in out
