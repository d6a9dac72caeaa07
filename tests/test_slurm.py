"""profiles/slurm against a real one-node SLURM (scripts/local_slurm.sh): Debian's
slurm-wlm and munge, four fake GPUs (gres entries on /dev/null).

Skipped, with the reason, where the cluster cannot run (not root, packages
missing); MERGELAB_REQUIRE_SLURM=1 (set by .ci/run) turns that into a failure, so
CI never passes by skipping them. Every wait is bounded.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, UNKNOWN_ARCHITECTURE, base_env, unloadable_copy, with_trained_demo, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

GPU_RULES = ("merge", "harness_eval", "harness_eval_samples", "harness_eval_model", "holmes_eval")
LIGHT_RULES = (
    "demo_models",
    "holmes_data",
    "harness_data",
    "merges_table",
    "organize",
    "plot",
    "fetch",
    "push",
    "push_results",
    "search_propose",
    "search_summary",
    "search_plot",
)
# The profile as it is, plus what a 2-core test machine needs: quick first status
# checks, no account, one CPU per job (the profile asks for 4).
TEST_ARGS = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-no-account",
    "--set-threads",
    *[f"{r}=1" for r in GPU_RULES],
]


def _env(workdir: Path, conf: str) -> dict:
    env = base_env(workdir)
    env["SLURM_CONF"] = conf
    return env


def _cmd(workdir: Path, configfile: Path | None, *args: str) -> list:
    cmd = SNAKEMAKE + [
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--cores",
        "2",
        *TEST_ARGS,
        *args,
    ]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    return cmd


def run_profile(workdir, configfile, conf, *args, timeout=1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(workdir, configfile, *args),
        cwd=workdir,
        env=_env(workdir, conf),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _default_sigint() -> None:
    """In the child: Ctrl-C (SIGINT) as a terminal delivers it. A pytest started in the background
    by a shell (tests/all.sh runs these tests beside the others) ignores SIGINT, its children inherit
    that, and a Python that starts with SIGINT ignored never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_profile(workdir, configfile, conf, *args) -> subprocess.Popen:
    """A run through the profile in the background: its console in ``.stdout`` (text)."""
    return subprocess.Popen(
        _cmd(workdir, configfile, *args),
        cwd=workdir,
        env=_env(workdir, conf),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_sigint,
    )


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def slurm_jobs(workdir: Path) -> list:
    """The jobs SLURM ran in workdir: finished ones stay known for MinJobAge, a day in
    scripts/local_slurm.sh, so the count does not depend on how long the run took."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=60).stdout
    jobs = []
    for line in out.splitlines():
        f = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
        if f.get("WorkDir") != str(workdir):
            continue
        m = re.match(r"rule_(\w+?)_wildcards_(.*)$", f.get("Comment", "")) or re.match(
            r"rule_(\w+)$", f.get("Comment", "")
        )
        f["rule"] = m.group(1) if m else None
        jobs.append(f)
    return jobs


def _mem_mb(tres: str) -> int:
    m = re.search(r"mem=(\d+(?:\.\d+)?)([MGT])", tres)
    return int(round(float(m.group(1)) * {"M": 1, "G": 1024, "T": 1024**2}[m.group(2)]))


def _minutes(limit: str) -> int:
    days, _, hms = limit.rpartition("-")
    h, mnt, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + mnt + (s > 0)


def test_finished_jobs_stay_countable_for_longer_than_any_test_run(slurm_cluster):
    """The tests count the jobs a run made from SLURM's records, which slurmctld drops MinJobAge
    seconds after a job ends: that must outlast the whole CI run (90 minutes), or a slow
    machine loses jobs from the count (issue 15: 600 s was not enough)."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60)
    m = re.search(r"^MinJobAge\s*=\s*(\d+)", out.stdout, re.M)
    assert m, out.stdout[-2000:]
    assert int(m.group(1)) == 0 or int(m.group(1)) >= 90 * 60, m.group(0)


def _small_config(tmp_path: Path, tiny_models: dict, **extra) -> Path:
    cfg = {
        "models": {k: {"path": str(v)} for k, v in tiny_models.items()},
        "merges": [
            {
                "name": "ab",
                "models": ["alpha", "beta"],
                "base": "base",
                "methods": ["linear", "task_arithmetic"],
                "dtype": "float32",
            }
        ],
        "harness": {"tasks": ["mergelab_categories"]},
        "holmes": {"activate": False},
    }
    cfg.update(extra)
    return write_config(tmp_path, cfg)


def _finished(workdir: Path, rule: str) -> int:
    """Jobs of ``rule`` the running Snakemake has seen finish (its log under .snakemake/log/)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    return len(re.findall(rf"^Finished jobid: \d+ \(Rule: {rule}\)$", logs[-1].read_text(), re.M)) if logs else 0


def _our_queue(workdir: Path) -> list:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %Z"], capture_output=True, text=True, timeout=60).stdout
    return [line.split()[:2] for line in out.splitlines() if line.split()[-1] == str(workdir)]


def test_sigint_cancels_the_jobs_and_the_run_resumes(slurm_cluster, tiny_models, tmp_path):
    """Ctrl-C cancels what the run submitted; the same command then finishes the
    campaign without redoing what was done. With compute.light_rules: cluster the
    tables and plots are SLURM jobs too."""
    cfg = _small_config(tmp_path, tiny_models, compute={"light_rules": "cluster"})
    proc = start_profile(tmp_path, cfg, slurm_cluster)
    harness = tmp_path / "results" / "harness"
    try:
        deadline = time.monotonic() + 600
        # interrupt once Snakemake has seen the merges finish (their weights on disk are not
        # enough: a merge still copying its tokenizer is cancelled and left to do again) and
        # evaluations are queued or running
        while time.monotonic() < deadline and proc.poll() is None:
            if _finished(tmp_path, "merge") == 2 and _our_queue(tmp_path):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it could be interrupted:\n" + proc.stdout.read()[-3000:]
        assert _our_queue(tmp_path)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    deadline = time.monotonic() + 60
    while _our_queue(tmp_path) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _our_queue(tmp_path), "the interrupted run left jobs in the queue"
    assert any(j["JobState"] == "CANCELLED" for j in slurm_jobs(tmp_path)), out[-3000:]

    merges = sorted((tmp_path / "results" / "models").iterdir())
    before = {m: (m / "model.safetensors").stat().st_mtime_ns for m in merges}
    done_before = {p: p.stat().st_mtime_ns for p in harness.rglob("*.json")}
    proc = run_profile(tmp_path, cfg, slurm_cluster)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert {m: (m / "model.safetensors").stat().st_mtime_ns for m in merges} == before  # not merged again
    assert all(p.stat().st_mtime_ns == t for p, t in done_before.items())  # finished evaluations kept
    assert len(list(harness.rglob("*.json"))) == 5
    assert (tmp_path / "results" / "tables" / "leaderboard.md").is_file()
    jobs = slurm_jobs(tmp_path)
    assert {"organize", "plot"} <= {j["rule"] for j in jobs if j["JobState"] == "COMPLETED"}
    assert "merges_table" in {j["rule"] for j in jobs}  # submitted in the first run or the second


def test_a_cancelled_evaluation_resumes_from_its_cache(slurm_cluster, tiny_models, tmp_path):
    """scancel of a harness job mid-way: the profile's retry resubmits it, and the new SLURM job
    takes every response the first computed from lm-eval's request cache, and gives what a run
    nothing cut off gives (issue 18)."""
    from test_harness_data import RESUME_TASK, big_task, cache_counts, cached_rows, resume_cfg, uninterrupted_run

    big_task(tmp_path / "tasks")
    cfg = write_config(tmp_path, {**resume_cfg(tiny_models, tmp_path / "tasks"), "holmes": {"activate": False}})
    proc = start_profile(tmp_path, cfg, slurm_cluster)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and cached_rows(tmp_path) < 300:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before its job could be cancelled:\n" + proc.stdout.read()[-3000:]
        killed = cached_rows(tmp_path)
        running = [job for job, state in _our_queue(tmp_path) if state == "RUNNING"]
        assert len(running) == 1, running
        subprocess.run(["scancel", running[0]], check=True, timeout=60)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    jobs = [j for j in slurm_jobs(tmp_path) if j["rule"] == "harness_eval"]
    assert sorted(j["JobState"] for j in jobs) == ["CANCELLED", "COMPLETED"], jobs
    counts = cache_counts((tmp_path / f"logs/harness_eval/base/{RESUME_TASK}.log").read_text())
    cached, computed = counts[-1]
    assert cached >= killed > 0 and cached + computed == 1600
    res = json.loads((tmp_path / f"results/harness/base/{RESUME_TASK}.json").read_text())
    full, _ = uninterrupted_run(tmp_path / "uninterrupted", tiny_models)  # locally, after the cluster's
    assert res["results"] == full["results"] and res["n-samples"] == full["n-samples"]
    assert res["mergelab"]["resumed_from_cache"] and not full["mergelab"]["resumed_from_cache"]


# ---------------------------------------------------------------- runs in the background

# The runs that need no one watching them (the demo campaign, the failing job) are submitted in the
# background when the module starts, and their tests, last in the module, collect them. Their waits
# on the cluster (jobs queued, the executor's status checks, less frequent the longer nothing
# finishes) overlap the runs of the tests that interrupt theirs (Ctrl-C, scancel), which watch
# their own jobs only (by working directory). The demo campaign goes first: its first jobs are
# ahead in the queue, and run at once.
BACKGROUND_TESTS = {
    "demo": "test_a_demo_campaign_runs_through_the_profile",
    "failing": "test_a_failing_job_fails_the_run",
}


class BackgroundRun:
    """A run through the profile in the background; its console goes to files in its workdir (no
    pipe to fill). result(): the finished run as subprocess.run would give it."""

    def __init__(self, workdir: Path, configfile: Path, conf: str, timeout: int = 1500):
        self.workdir, self.deadline = workdir, time.monotonic() + timeout
        self.out, self.err = workdir / "console.out", workdir / "console.err"
        self.args = _cmd(workdir, configfile)
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                self.args, cwd=workdir, env=_env(workdir, conf), stdout=out, stderr=err, preexec_fn=_default_sigint
            )

    def result(self) -> subprocess.CompletedProcess:
        self.proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        return subprocess.CompletedProcess(self.args, self.proc.returncode, self.out.read_text(), self.err.read_text())

    def stop(self) -> None:
        """Ctrl-C (Snakemake cancels its SLURM jobs), then kill."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module", autouse=True)
def background(request, tmp_path_factory):
    """name -> (workdir, config, BackgroundRun) of each background run whose test is selected."""
    selected = {item.name for item in request.session.items if item.module is request.module}
    runs = {}
    try:
        if BACKGROUND_TESTS["demo"] in selected:
            conf, trained = request.getfixturevalue("slurm_cluster"), request.getfixturevalue("trained_demo")
            wd = tmp_path_factory.mktemp("slurm-demo")
            cfg = demo_campaign()
            with_trained_demo(wd, trained)
            runs["demo"] = (wd, cfg, BackgroundRun(wd, write_config(wd, cfg), conf))
        if BACKGROUND_TESTS["failing"] in selected:
            conf, tiny = request.getfixturevalue("slurm_cluster"), request.getfixturevalue("tiny_models")
            wd = tmp_path_factory.mktemp("slurm-failing")
            broken = unloadable_copy(tiny["base"], wd / "broken")
            cfg = _small_config(wd, {"base": tiny["base"], "broken": broken}, merges=[])
            runs["failing"] = (wd, cfg, BackgroundRun(wd, cfg, conf))
        yield runs
    finally:
        for _, _, run in runs.values():  # a test that failed before collecting its run
            run.stop()


def demo_campaign() -> dict:
    """The embedded default's recipe with two of its methods, one task, Holmes, and the default's
    search, one generation of two trials: its checkpoints on this host, its trials' merges and dev
    evaluations, and its best trial's merge, submitted like any GPU job; the merges evaluated, not
    the parents, whose jobs are of the same rules (13 GPU jobs)."""
    default = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    recipe = {k: v for k, v in default["merges"][0].items() if k not in ("method_parameters", "moe")}
    cfg = dict(default, merges=[dict(recipe, methods=["linear", "ties"])])
    cfg["evaluation"] = {"models": [recipe["name"]]}  # and the search's best trial
    cfg["harness"] = dict(default["harness"], tasks=["mergelab_categories"])
    cfg["search"] = [dict(default["search"][0], trials=2, parallel=2, limit=4, keep_trials=False)]
    return cfg


def test_a_demo_campaign_runs_through_the_profile(background):
    """A campaign of the demo models via --profile profiles/slurm (demo_campaign(); the whole default
    through SLURM is bench/slurm_overhead.py's), run in the background (the fixture background):
    GPU rules become SLURM jobs sized from their model (--gpus, --mem, -t), each on its own fake
    GPU; light rules stay on the submitting host."""
    from mergelab.plan.experiment import load_experiment

    tmp_path, cfg, run = background["demo"]
    proc = run.result()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    for table in ("harness.csv", "holmes.csv", "merge_comparisons.csv", "leaderboard.md"):
        assert (tmp_path / "results" / "tables" / table).stat().st_size > 0, table
    exp = load_experiment(cfg, "cfg", workdir=tmp_path)  # every figure (the search's too)
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in (tmp_path / "results" / "plots").rglob("*.png")
    ) == sorted(exp.targets("plots"))

    jobs = [j for j in slurm_jobs(tmp_path) if j["JobState"] == "COMPLETED"]
    by_rule = {}
    for j in jobs:
        by_rule.setdefault(j["rule"], []).append(j)
    n_merges = len(list((tmp_path / "results" / "models").iterdir()))
    assert len(by_rule.get("merge", [])) == n_merges  # the trials' are deleted once scored (keep_trials)
    assert len(by_rule.get("merge_released", [])) == len(by_rule.get("search_eval", [])) == 2
    assert len(by_rule.get("search_best", [])) == 1
    # the default's harness.jobs: per_model, one job per model (here of one task)
    assert len(by_rule.get("harness_eval_model", [])) == len(list((tmp_path / "results" / "harness").rglob("*.json")))
    assert len(by_rule.get("holmes_eval", [])) == len(list((tmp_path / "results" / "holmes").rglob("scores.csv")))
    assert not set(by_rule) & set(LIGHT_RULES), "light rules must run on the submitting host"

    # Each GPU job: submitted with --gpus=1, the memory and time limit its log
    # reports as its (size-based) resources, and the fake GPU SLURM gave it alone.
    seen = []
    logs = {}
    for log in (tmp_path / "logs").rglob("*.log"):
        text = log.read_text(errors="replace")
        for m in re.finditer(r"job resources: gpu=(\d+) mem_mb=(\d+) runtime=(\d+) threads=\d+ slurm_job=(\d+)", text):
            logs[m.group(4)] = (int(m.group(1)), int(m.group(2)), int(m.group(3)), text)
    for j in jobs:
        assert j["TresPerJob"] == "gres:gpu:1", j
        gpu, mem_mb, runtime, text = logs[j["JobId"]]
        assert gpu == 1 and _mem_mb(j["TRES"]) == mem_mb and _minutes(j["TimeLimit"]) == runtime, j
        cvd = re.search(rf"SLURM assigned to job {j['JobId']}: CUDA_VISIBLE_DEVICES=(\S+)", text)
        assert cvd, f"job {j['JobId']} did not use the devices SLURM assigned"
        devices = set(cvd.group(1).split(","))
        assert len(devices) == 1
        seen.append((_when(j["StartTime"]), _when(j["EndTime"]), devices, j["JobId"]))
    overlapping = 0
    for i, (s1, e1, d1, id1) in enumerate(seen):
        for s2, e2, d2, id2 in seen[i + 1 :]:
            if s1 < e2 and s2 < e1:
                overlapping += 1
                assert not d1 & d2, f"jobs {id1} and {id2} ran at once on the same GPU {d1}"
    assert overlapping > 0, "no two GPU jobs ran at once: the test proves nothing about pinning"


def test_a_failing_job_fails_the_run(background):
    """A model no job can load fails its SLURM job (after the profile's retry); the run (in the
    background: the fixture background) exits non-zero, and the other evaluations still finished."""
    tmp_path, _, run = background["failing"]
    proc = run.result()
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Error in rule harness_eval" in out and "logs/harness_eval/broken/mergelab_categories.log" in out
    assert UNKNOWN_ARCHITECTURE in (tmp_path / "logs/harness_eval/broken/mergelab_categories.log").read_text()
    assert (tmp_path / "results/harness/base/mergelab_categories.json").is_file()  # keep-going
    assert not (tmp_path / "results/harness/broken/mergelab_categories.json").exists()
    failed = [j for j in slurm_jobs(tmp_path) if j["JobState"] == "FAILED"]
    assert len(failed) == 2 and {j["rule"] for j in failed} == {"harness_eval"}  # the job and its one retry
