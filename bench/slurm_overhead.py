"""The SLURM profile's cost on the local one-node cluster (scripts/local_slurm.sh).

    python bench/slurm_overhead.py [--repeats 3] [--init-seconds 40] [--skip-default] [--quick]

Needs root and `apt-get install slurm-wlm munge`; starts the cluster if it is not
running (and stops it afterwards), four fake GPUs, this machine's cores.

1. The embedded default, locally (snakemake --cores 2) and through
   --profile profiles/slurm (one CPU per job so that two run at once on two
   cores, as locally): total wall time and ratio.
2. One harness job of the embedded default (forced to rerun), alone on the idle
   cluster, `repeats` times, through the profile and locally: the job the default
   runs, as its harness.jobs says (per_model: harness_eval_model, all the tasks of
   base; per_task: harness_eval, base x mergelab_categories), so that it is one of
   the jobs part 1 submitted. Its wall time split into: SLURM's submission to
   start (scontrol, 1 s resolution), the start to the job script's first log line
   (the jobstep re-reads the workflow inside the allocation), the script itself,
   and the rest (Snakemake noticing the end: the status checks begin after
   --slurm-init-seconds-before-status-checks, 40 in the profile).

--quick: the default cut down to seconds (bench/common.py, quick_default; part 2
on its one evaluated model, the merge), one repeat, first status check after 2 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from common import REPO, default_campaign, env, parse_args

SCRIPT = REPO / "scripts" / "local_slurm.sh"
THREADS = [
    "--set-threads",
    "merge=1",
    "harness_eval=1",
    "harness_eval_samples=1",
    "harness_eval_model=1",
    "holmes_eval=1",
]
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", re.M)


def run(cmd, wd: Path, e: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, env=e, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0


def base_cmd(wd: Path) -> list:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(wd),
        "--cores",
        "2",
    ]


def profile_args(init_seconds: int) -> list:
    return [
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks",
        str(init_seconds),
        *THREADS,
    ]


def harness_job(wd: Path) -> tuple:
    """The harness job of the campaign in wd that part 2 times, as its config plans it: (its
    rule, a target it writes, its log, what it evaluates)."""
    from mergelab.plan.experiment import load_experiment

    path = wd / "config" / "experiment.yaml"
    exp = load_experiment(yaml.safe_load(path.read_text()), str(path), workdir=wd)
    model, task = exp.harness.models[0], "mergelab_categories"
    target = f"results/harness/{model}/{task}.json"
    if exp.harness.jobs == "per_model":
        what = f"{model}, its {len(exp.harness.tasks)} tasks"
        return "harness_eval_model", target, wd / "logs" / "harness_eval_model" / f"{model}.log", what
    return "harness_eval", target, wd / "logs" / "harness_eval" / model / f"{task}.log", f"{model} x {task}"


def jobs_of(wd: Path) -> list:
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout
    jobs = []
    for line in out.splitlines():
        f = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
        if f.get("WorkDir") == str(wd):
            jobs.append(f)
    return jobs


def ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def log_span(path: Path) -> tuple:
    stamps = STAMP.findall(path.read_text(errors="replace"))
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in (stamps[0], stamps[-1]))
    return first, last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--init-seconds", type=int, default=40, help="the profile's first status check (40)")
    ap.add_argument("--skip-default", action="store_true", help="only the single-job measurement")
    args = parse_args(ap, repeats=1, init_seconds=2)
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        sys.exit("needs root and slurm-wlm + munge (apt-get install slurm-wlm munge)")
    was_running = "slurmctld: running" in subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True).stdout
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, check=True).stdout
    e = env()
    e["SLURM_CONF"] = started.strip().split("=", 1)[1]
    e["MERGELAB_GPUS"] = ""
    try:
        print(
            f"local SLURM: 1 node, {os.cpu_count()} CPUs, 4 fake GPUs; "
            f"--slurm-init-seconds-before-status-checks {args.init_seconds}"
        )
        if not args.skip_default:
            wd = default_campaign("slurm-default-local", args.quick)
            local = run(base_cmd(wd), wd, e)
            wd = default_campaign("slurm-default-slurm", args.quick)
            slurm = run(base_cmd(wd) + profile_args(args.init_seconds), wd, e)
            jobs = [j for j in jobs_of(wd) if j["JobState"] == "COMPLETED"]
            waits = [ts(j["StartTime"]) - ts(j["SubmitTime"]) for j in jobs]
            print(f"embedded default, local    {local:7.1f} s")
            print(
                f"embedded default, SLURM    {slurm:7.1f} s   ratio SLURM/local {slurm / local:.2f}   "
                f"({len(jobs)} SLURM jobs; submission to start median {statistics.median(waits):.0f} s, "
                f"max {max(waits):.0f} s: queued behind the 2 CPUs)"
            )

        wd = default_campaign("slurm-one-job", args.quick)
        rule, target, log, what = harness_job(wd)
        run(base_cmd(wd) + [target], wd, e)  # the models and the first result, locally
        rows = {"local": [], "slurm": []}
        for _ in range(args.repeats):
            for kind in ("local", "slurm"):
                log.unlink(missing_ok=True)
                extra = profile_args(args.init_seconds) if kind == "slurm" else []
                t_start = time.time()
                wall = run(base_cmd(wd) + [target, "--forcerun", rule] + extra, wd, e)
                first, last = log_span(log)
                row = {"wall": wall, "script": last - first, "before": first - t_start}
                if kind == "slurm":
                    job = max(jobs_of(wd), key=lambda j: int(j["JobId"]))
                    row["queue"] = ts(job["StartTime"]) - ts(job["SubmitTime"])
                    row["jobstep"] = first - ts(job["StartTime"])
                    row["submit"] = ts(job["SubmitTime"]) - t_start
                rows[kind].append(row)
        med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in rows.items()}
        lo, sl = med["local"], med["slurm"]
        print(f"one harness job ({rule}: {what}), median of {args.repeats}:")
        print(
            f"  local: wall {lo['wall']:6.1f} s = {lo['before']:.1f} s to the script + script {lo['script']:.1f} s "
            f"+ {lo['wall'] - lo['before'] - lo['script']:.1f} s after"
        )
        print(
            f"  SLURM: wall {sl['wall']:6.1f} s = {sl['submit']:.1f} s to sbatch + {sl['queue']:.0f} s "
            f"submission to start + {sl['jobstep']:.1f} s start to the script + script {sl['script']:.1f} s "
            f"+ {sl['wall'] - sl['before'] - sl['script']:.1f} s until snakemake saw it end"
        )
        print(
            f"  overhead per job through the profile: {sl['wall'] - lo['wall']:.1f} s "
            f"(ratio {sl['wall'] / lo['wall']:.2f})"
        )
    finally:
        if not was_running:
            subprocess.run([str(SCRIPT), "stop"], capture_output=True)


if __name__ == "__main__":
    main()
