"""mergelab as a Snakemake module (issue 27): a deploying workflow loads workflow/Snakefile with
`module mergelab: snakefile: ...; config: ...` and `use rule * from mergelab as mergelab_*`; the
config it passes wins over a config/experiment.yaml beside it, and after a failure the tables of
what exists are still built in results/partial/ under the prefixed rule names."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, base_env, planned_jobs, unloadable_copy

pytestmark = pytest.mark.workflow

DEPLOYING = """\
configfile: "config/config.yaml"


module mergelab:
    snakefile:
        "{snakefile}"
    config:
        config["mergelab"]


use rule * from mergelab as mergelab_*


rule all:
    default_target: True
    input:
        rules.mergelab_all.input,


onsuccess:
    from mergelab.analysis.outputs import end_of_campaign

    end_of_campaign(success=True)


onerror:
    from mergelab.analysis.outputs import end_of_campaign

    end_of_campaign(success=False)
"""


def deploy(wd, cfg):
    """A workflow in ``wd`` that uses mergelab as a module with ``cfg``; a different
    config/experiment.yaml beside it (as snakedeploy leaves one), which must not be read."""
    (wd / "config").mkdir(parents=True)
    (wd / "Snakefile").write_text(DEPLOYING.format(snakefile=REPO / "workflow" / "Snakefile"))
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({"mergelab": cfg}, sort_keys=False))
    (wd / "config" / "experiment.yaml").write_text((REPO / "config" / "experiment.yaml").read_text())


def run(wd, *args, timeout=600):
    cmd = SNAKEMAKE + ["--cores", "2", *args]
    return subprocess.run(cmd, cwd=wd, env=base_env(wd), capture_output=True, text=True, timeout=timeout)


def test_a_deploying_workflow_runs_mergelab_as_a_prefixed_module(tmp_path, tiny_models):
    broken = unloadable_copy(tiny_models["alpha"], tmp_path / "broken")
    cfg = {
        "models": {
            "base": {"path": str(tiny_models["base"])},
            "beta": {"path": str(tiny_models["beta"])},
            "broken": {"path": str(broken)},
        },
        "harness": {"tasks": ["mergelab_categories"], "settings": {"batch_size": 8}},
    }
    wd = tmp_path / "deploying"
    deploy(wd, cfg)

    dry = run(wd, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout)
    # the module's config, not the embedded default beside it (no merge, no demo models, no Holmes)
    assert set(jobs) == {
        "mergelab_harness_eval",
        "mergelab_merges_table",
        "mergelab_organize",
        "mergelab_plot",
        "all",
    }, jobs
    assert sorted(jobs["mergelab_harness_eval"]) == [
        f"model={m}, task=mergelab_categories" for m in ("base", "beta", "broken")
    ]

    proc = run(wd, "--keep-going")
    assert proc.returncode != 0
    assert "mergelab: 1 job(s) failed; each log ends with the cause:\n" in proc.stderr, proc.stderr[-3000:]
    assert "  mergelab_harness_eval (model=broken, task=mergelab_categories): " in proc.stderr
    assert "results/partial/ (leaderboard: results/partial/tables/leaderboard.md)" in proc.stderr
    board = (wd / "results" / "partial" / "tables" / "leaderboard.md").read_text()
    assert "| broken |" in board and "| base |" in board
    assert not (wd / "results" / "tables").exists()
