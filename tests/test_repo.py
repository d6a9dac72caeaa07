"""The project's own contract: lint, env pins, the README's commands."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, base_env


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


@pytest.mark.workflow
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


def _make_recipe(target: str) -> str:
    """The commands of a Makefile target."""
    return re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M).group(1)


def test_ci_runs_the_readme_test_command():
    """CI runs the whole suite, `make test-all`, the README's command for it (not `make test`, the
    fast tier, a prefix of it): the commands are compared whole, and the targets are what they say."""
    readme = " ".join((REPO / "README.md").read_text().split())
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if re.match(r"\s*make\s", line)]
    assert "make test-all" in ci, ci
    assert "`make test-all` runs everything" in readme and "it is what CI's `.ci/run` calls" in readme
    assert re.search(r"```bash make run +# .* make test +# the fast test tier", readme)
    assert '-m "not workflow and not slow"' in _make_recipe("test")
    everything = _make_recipe("test-all")
    assert "tests/all.sh" in everything and " -m " not in everything
    halves = (REPO / "tests" / "all.sh").read_text()  # the two processes of all.sh: every test between them
    assert "pytest -m slurm " in halves and 'pytest -m "not slurm" ' in halves, halves


def _run(workdir, *args, configfile=None, env=None, timeout=900):
    """snakemake in workdir; targets first, then flags, then --configfile (it takes several values)."""
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    return subprocess.run(cmd, cwd=REPO, env=env or base_env(workdir), capture_output=True, text=True, timeout=timeout)


def _tree(root):
    """path -> bytes of every file under root."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.workflow
def test_embedded_default_runs_offline(default_run):
    wd, proc = default_run
    cfg = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    from mergelab.plan.experiment import load_experiment
    from mergelab.plan.merge_jobs import merges_table

    exp = load_experiment(cfg, "config/experiment.yaml", workdir=wd)
    for mid in list(exp.merges):
        assert (wd / "results" / "models" / mid / "model.safetensors").is_file(), mid
    assert (wd / "results" / "merges.tsv").read_text() == merges_table(exp)
    for table in (
        "harness.csv",
        "harness.parquet",
        "holmes.csv",
        "holmes_competences.csv",
        "leaderboard.md",
        "provenance.json",
        "merge_comparisons.csv",
        "normalised_scores.csv",
        "leaderboard.csv",
    ):
        assert (wd / "results" / "tables" / table).stat().st_size > 0, table
    assert len(list((wd / "results" / "plots").rglob("*.png"))) >= 8
    # the last lines say where the results are (issue 15)
    assert "mergelab: done.\n  leaderboard: results/tables/leaderboard.md" in proc.stderr
    again = _run(wd, "-n", timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_the_gallery_is_what_the_default_run_gives(default_run):
    """docs/gallery/leaderboard.md, which README.md and docs/demo.md quote (tests/test_docs.py),
    is the default run's leaderboard; `make gallery` regenerates it and the figures."""
    wd, _ = default_run
    made = (wd / "results" / "tables" / "leaderboard.md").read_text()
    assert made == (REPO / "docs" / "gallery" / "leaderboard.md").read_text(), (
        "docs/gallery/ is out of date: run `make gallery` and update the numbers the docs quote\n" + made
    )


@pytest.mark.workflow
def test_demo_verdicts(default_run):
    """Issue 19 on the embedded default: words (16/16) against base (4/16) on the 16 held-out nouns
    is a difference the paired test finds; a merge two items above a parent is not; and every
    comparison's values are the per-item results' and lm-eval's own."""
    import numpy as np
    import pandas as pd

    from mergelab.analysis import stats

    wd, _ = default_run
    acc = {}
    for model in ("words", "base"):
        items = pd.read_parquet(wd / "results" / "harness" / model / "mergelab_categories.items.parquet")
        sel = items[(items["metric"] == "acc_norm") & (items["filter"] == "none")].sort_values("doc_id")
        assert sel["doc_id"].tolist() == list(range(16))
        acc[model] = sel["value"].to_numpy(float)
    assert acc["words"].mean() == 1.0 and acc["base"].mean() == 0.25
    values = np.vstack([acc["words"], acc["base"]])
    res = stats.compare_task(
        "mean", values, np.ones_like(values), [stats.Pair(0, 1)], 10000, 0.05, stats.task_rng(0, "t")
    )
    assert stats.verdict(res[0].diff, res[0].p_value, 0.05, True) == "better"

    comparisons = pd.read_csv(wd / "results" / "tables" / "merge_comparisons.csv")
    cats = comparisons[comparisons["task"] == "mergelab_categories"]
    two_up = cats[np.isclose(cats["diff"], 2 / 16)]
    assert len(two_up) > 0 and set(two_up["verdict"]) == {"indistinguishable"}, two_up
    harness = pd.read_csv(wd / "results" / "tables" / "harness.csv")
    head = harness[harness["primary"] & (harness["task"] == harness["harness_task"])].set_index(["model", "task"])
    for r in comparisons[~comparisons["task"].str.startswith("holmes: ")].itertuples():
        assert head.loc[(r.model, r.task), "value"] == pytest.approx(r.merge_value, rel=1e-9)
        assert head.loc[(r.parent, r.task), "value"] == pytest.approx(r.parent_value, rel=1e-9)


@pytest.mark.workflow
def test_a_finished_default_campaign_moved_elsewhere_reruns_nothing(default_run, tmp_path):
    wd, _ = default_run
    moved = tmp_path / "moved"
    shutil.copytree(wd, moved, symlinks=True)  # keeps the files' times, as cp -a or rsync -a would
    proc = _run(moved, "-n", timeout=300)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


@pytest.mark.workflow
def test_failures_under_another_config_leave_the_campaign_alone(default_run, tmp_path, tiny_models):
    """Issue 15: a push failing under another --configfile with fewer merges rebuilt the main
    tables from that config, and the next plain run trusted them. Now a failed run writes
    nothing where a rule writes: the tables and figures stay byte-identical, and a plain run
    still has nothing to do."""
    from conftest import unloadable_copy

    wd, _ = default_run
    before = _tree(wd / "results" / "tables") | _tree(wd / "results" / "plots")
    cfg = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())

    # 1. a push target of a campaign with fewer merges, the Hub out of reach
    fewer = dict(cfg, merges=cfg["merges"][:1])
    fewer["hub"] = {"push": {"activate": True, "namespace": "me"}, "retries": 1, "retry_wait": 0.05}
    target = "results/hub/math-words_linear_w1.json"
    env = dict(base_env(wd), HF_TOKEN="hf_notreal", HF_ENDPOINT="http://127.0.0.1:9")
    env.pop("HF_HUB_OFFLINE", None)
    proc = _run(wd, target, configfile=write(tmp_path / "push.yaml", fewer), env=env, timeout=300)
    assert proc.returncode != 0 and "mergelab: 1 job(s) failed" in proc.stderr, proc.stderr[-3000:]
    assert "  push (model=math-words_linear_w1): logs/push/math-words_linear_w1.log" in proc.stderr
    assert not (wd / "results" / "partial").exists()  # that run was not to make tables

    # 2. the tables of a campaign with one more model, whose evaluation fails
    more = dict(
        cfg, models=dict(cfg["models"], broken={"path": str(unloadable_copy(tiny_models["base"], tmp_path / "b"))})
    )
    proc = _run(wd, "tables", configfile=write(tmp_path / "more.yaml", more), timeout=600)
    assert proc.returncode != 0 and "results/partial/" in proc.stderr, proc.stderr[-3000:]
    partial = (wd / "results" / "partial" / "tables" / "leaderboard.md").read_text()
    assert "| broken | parent | – | – | – | – | – |" in partial

    assert _tree(wd / "results" / "tables") | _tree(wd / "results" / "plots") == before
    again = _run(wd, "-n", timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


def write(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
