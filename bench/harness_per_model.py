"""harness.jobs: per_model vs per_task on the embedded default, from nothing to the figures (issue 17).

    python bench/harness_per_model.py [--cores 2] [--quick]

Runs the default campaign (config/experiment.yaml, demo training included) twice, each in a
fresh working directory as bench/default_run.py does: with `--config "harness={jobs: per_task}"`
and with per_model (the default config's choice). Prints the harness
job seconds (benchmarks/harness_eval*/, summed), the harness job count, the wall time of
each run and the ratios per_model / per_task, against the targets (job seconds <= 0.5x,
wall <= 0.8x). --quick runs the default cut down to seconds (bench/common.py, quick_default).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from default_run import stage_seconds

from common import REPO, default_campaign, env, parse_args

TARGETS = {"harness job seconds": 0.5, "wall": 0.8}


def run(jobs: str, cores: int, quick: bool) -> dict:
    wd = default_campaign(f"harness-{jobs}", quick)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd)]
    cmd += ["--cores", str(cores)]
    cmd += ["--config", f"harness={{jobs: {jobs}}}"]  # the default config says per_model
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=wd, env=env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    stages = stage_seconds(wd)
    harness = {k: v for k, v in stages.items() if k.startswith("harness_eval")}
    count = sum(1 for _ in (wd / "benchmarks").glob("harness_eval*/**/*.tsv"))
    return {"wall": wall, "harness job seconds": sum(harness.values()), "jobs": count, "rules": harness}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    args = parse_args(ap)
    out = {}
    for jobs in ("per_task", "per_model"):
        out[jobs] = r = run(jobs, args.cores, args.quick)
        rules = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["rules"].items()))
        print(
            f"{jobs}: wall {r['wall']:.1f} s; harness {r['jobs']} jobs, "
            f"{r['harness job seconds']:.1f} job seconds ({rules})"
        )
    for what, target in TARGETS.items():
        ratio = out["per_model"][what] / out["per_task"][what]
        verdict = "met" if ratio <= target else "missed"
        print(
            f"{what}: per_model {out['per_model'][what]:.1f} s / per_task {out['per_task'][what]:.1f} s = "
            f"{ratio:.2f} (target <= {target}: {verdict})"
        )


if __name__ == "__main__":
    main()
