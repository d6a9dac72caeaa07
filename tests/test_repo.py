"""The project's own contract: lint, env pins, the README's commands."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, base_env, with_trained_demo


def lock_pins() -> dict:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_conda_envs_pin_what_the_lock_pins():
    pins = lock_pins()
    torch_version = re.search(r"^TORCH_VERSION \?= (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert {p.stem for p in envs} >= {"mergekit", "lm-eval", "holmes", "analysis", "hub"}
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        for spec in pip:
            name, version = spec.split("==")
            name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
            expected = torch_version if name == "torch" else pins.get(name)
            assert version == expected, f"{env.name}: {spec} but the lock has {expected}"


def test_every_rule_names_its_env_and_lint_is_clean(tmp_path):
    import shutil

    shutil.copytree(REPO / "config", tmp_path / "config")
    proc = subprocess.run(
        SNAKEMAKE + ["--lint", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)],
        cwd=REPO,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^make test\b", ci, re.M) or "make test" in ci


@pytest.mark.workflow
def test_embedded_default_runs_offline(tmp_path, trained_demo):
    """What `make run` does, in a scratch directory: every merge, evaluation, table and figure
    (the demo models trained once per test run, by the trained_demo fixture)."""
    import shutil

    shutil.copytree(REPO / "config", tmp_path / "config")  # config paths are relative to the working directory
    with_trained_demo(tmp_path, trained_demo)
    proc = subprocess.run(
        SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", "--quiet"],
        cwd=REPO,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    cfg = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    from mergelab.plan.experiment import load_experiment

    exp = load_experiment(cfg, "config/experiment.yaml", workdir=tmp_path)
    for mid in exp.merge_ids:
        assert (tmp_path / "results" / "models" / mid / "model.safetensors").is_file(), mid
    assert (tmp_path / "results" / "merges.tsv").read_text() == exp.merges_table()
    for table in (
        "harness.csv",
        "harness.parquet",
        "holmes.csv",
        "holmes_competences.csv",
        "leaderboard.md",
        "provenance.json",
        "merge_comparisons.csv",
    ):
        assert (tmp_path / "results" / "tables" / table).stat().st_size > 0, table
    assert len(list((tmp_path / "results" / "plots").rglob("*.png"))) >= 8
    again = subprocess.run(
        SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", "-n"],
        cwd=REPO,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Nothing to be done" in again.stdout + again.stderr
