"""Snakemake reruns exactly what a config change made stale."""

from __future__ import annotations

import copy

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
