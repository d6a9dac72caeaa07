"""Wall time of the embedded default, from nothing to the figures: what `make run` does after install.

    python bench/default_run.py [--cores 2] [--repeats 1] [--quick]

Each run starts in a fresh working directory with a copy of config/ (so the demo
models are trained too) and runs `snakemake --cores N`; then `snakemake --report`.
Prints the wall times, the time of each stage from the job benchmarks (job
seconds, summed), and the ratio to the target of 5 minutes on 2 cores. --quick runs the
default cut down to seconds (bench/common.py, quick_default; no demo training).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, default_campaign, env, median, parse_args

TARGET_S = 300.0


def stage_seconds(wd: Path) -> dict:
    out = {}
    for tsv in (wd / "benchmarks").rglob("*.tsv"):
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        rule = tsv.relative_to(wd / "benchmarks").parts[0]
        out[rule] = out.get(rule, 0.0) + float(rows[-1]["s"])  # the file's latest run
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = parse_args(ap)

    runs, reports = [], []
    for i in range(args.repeats):
        wd = default_campaign("default-run", args.quick)
        base = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd)]
        t0 = time.perf_counter()
        subprocess.run(
            base + ["--cores", str(args.cores)],
            cwd=wd,
            env=env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(
            base + ["--report", "results/report.html"],
            cwd=wd,
            env=env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        reports.append(time.perf_counter() - t0)
        if args.quick:
            trained = ["none (--quick: untrained tiny models)"]
        else:
            demo_log = (wd / "logs/demo_models/demo_models.log").read_text()
            trained = [line.split("INFO mergelab: ")[-1] for line in demo_log.splitlines() if "trained in" in line]
        print(f"run {i + 1}: {runs[-1]:.1f} s (report {reports[-1]:.1f} s); demo_models: {'; '.join(trained)}")
        stages = stage_seconds(wd)
        print(
            "  job seconds per rule (summed over its jobs): "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(stages.items()))
        )
    run = median(runs)
    print(
        f"default run on {args.cores} cores: median {run:.1f} s + report {median(reports):.1f} s; "
        f"target {TARGET_S:.0f} s: ratio {run / TARGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
