"""Merge search on the demo: what N trials of a search find against N grid points and against the
embedded default's recipe, at the same dev objective; and Snakemake's re-planning per generation.

    python bench/search.py [--trials 8] [--parallel 2] [--sampler tpe] [--cores 2] [--limit 16]
                           [--size demo] [--default-methods linear,...] [--quick]

One campaign in bench/out/search/ on the trained demo models (bench/out/models-demo, built
once; --size tiny: untrained ones): the search (task_arithmetic and ties, per-model weights in
[0.2, 1.5]); a grid of the same size over the same space (both methods x weight.math x
weight.words, as many points per axis as the budget gives); and the default's math-words recipe
(every method but moe; --default-methods picks some). Every
model is evaluated on the objective's tasks with the search's limit (harness.settings.limit), so
a grid merge's score is its dev score. Prints each one's best objective and the search's
against them, then, per generation, the seconds from a search_propose checkpoint finishing to
the first job of its trials starting (Snakemake's DAG update; target <= 5 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from common import OUT, REPO, demo_models, env, parse_args, snakemake_cmd, workdir

OBJECTIVE = {"mergelab_arithmetic": 1.0, "mergelab_categories": 1.0}
DEFAULT_METHODS = "linear,slerp,model_stock,task_arithmetic,ties,dare_ties"  # the embedded default's, but moe
TARGET_S = 5.0


def config(models: Path, trials: int, parallel: int, sampler: str, limit: int, methods: list) -> dict:
    per_axis = max(1, int(math.sqrt(trials / 2)))  # 2 methods x per_axis^2 grid points
    grid = [round(0.2 + 1.3 * i / max(1, per_axis - 1), 3) for i in range(per_axis)] if per_axis > 1 else [1.0]
    return {
        "models": {n: {"path": str(models / n)} for n in ("base", "math", "words")},
        "merges": [
            {
                "name": "grid",
                "models": ["math", "words"],
                "base": "base",
                "methods": ["task_arithmetic", "ties"],
                "parameters": {"weight": {"math": grid, "words": grid}},
                "dtype": "float32",
            },
            {  # the embedded default's recipe (--default-methods)
                "name": "default",
                "models": ["math", "words"],
                "base": "base",
                "methods": methods,
                "parameters": {"weight": 1.0},
                "dtype": "float32",
            }
            | ({"method_parameters": {"slerp": {"t": [0.25, 0.5, 0.75]}}} if "slerp" in methods else {}),
        ],
        "search": [
            {
                "name": "tune",
                "models": ["math", "words"],
                "base": "base",
                "methods": ["task_arithmetic", "ties"],
                "space": {"weight": {"math": [0.2, 1.5], "words": [0.2, 1.5]}},
                "objective": {"tasks": OBJECTIVE},
                "limit": limit,
                "sampler": sampler,
                "trials": trials,
                "parallel": parallel,
                "dtype": "float32",
            }
        ],
        "evaluation": {"models": ["grid", "default"]},  # the search's best trial joins by itself
        "harness": {
            "jobs": "per_model",
            "tasks": list(OBJECTIVE),
            "settings": {"limit": limit, "batch_size": 16, "bootstrap_iters": 100},
        },
        "holmes": {"activate": False},
        "stats": {"bootstrap": 200},
    }


def objective(result_files: dict) -> float:
    from mergelab.search import task_score

    total = 0.0
    for task, weight in OBJECTIVE.items():
        res = json.loads(Path(result_files[task]).read_text())
        value, _, reason = task_score(res, task)
        if value is None:
            return math.nan
        total += weight * value
    return total


STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")


def replanning(log: Path, trials_of: dict) -> list:
    """Per generation g >= 0: seconds from checkpoint search_propose gen g finishing to the first
    job of one of its trials starting (the log's stamps have whole seconds)."""
    stamp, finished, started = None, {}, {}
    lines = log.read_text().splitlines()
    for i, line in enumerate(lines):
        m = STAMP.match(line.strip())
        if m:
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        f = re.match(r"Finished jobid: \d+ \(Rule: search_propose\)", line.strip())
        if f and stamp:  # which generation: the job's wildcards were printed when it started
            jobid = re.search(r"jobid: (\d+)", line).group(1)
            finished[jobid] = stamp
        s = re.match(r"(?:local)?rule (?:merge_released|merge):", line.strip())
        if s and stamp:
            block = "\n".join(lines[i : i + 12])
            w = re.search(r"wildcards: model=(\S+)", block)
            if w and w.group(1) in trials_of:
                started.setdefault(trials_of[w.group(1)], stamp)
    gens = {}
    for i, line in enumerate(lines):
        if line.strip().startswith("localcheckpoint search_propose:") or line.strip().startswith(
            "checkpoint search_propose:"
        ):
            block = "\n".join(lines[i : i + 10])
            jobid = re.search(r"jobid: (\d+)", block).group(1)
            gen = int(re.search(r"generation=(\d+)", block).group(1))
            gens[gen] = jobid
    out = []
    for gen, jobid in sorted(gens.items()):
        if jobid in finished and gen in started:
            out.append((gen, (started[gen] - finished[jobid]).total_seconds()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--size", default="demo", help="of the demo models (demo: trained)")
    ap.add_argument("--default-methods", default=DEFAULT_METHODS, help="the default recipe's methods")
    args = parse_args(ap, trials=2, limit=4, size="tiny", default_methods="linear")

    models = demo_models(args.size)
    shutil.rmtree(OUT / "search", ignore_errors=True)
    cfg = config(models, args.trials, args.parallel, args.sampler, args.limit, args.default_methods.split(","))
    wd, path = workdir("search", cfg)
    t0 = time.perf_counter()
    subprocess.run(
        snakemake_cmd(wd, path, "--cores", str(args.cores), "--resources", f"gpu={args.cores}"),
        cwd=wd,
        env=env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wall = time.perf_counter() - t0

    import pandas as pd

    sys.path.insert(0, str(REPO / "scripts"))
    from mergelab.plan.experiment import load_experiment

    exp = load_experiment(cfg, str(path), workdir=wd)
    trials = pd.read_csv(wd / "results/search/tune/trials.csv")
    found = trials["objective"].max()
    scores = {}
    for mid, spec in exp.merges.items():
        files = {t: wd / f"results/harness/{mid}/{t}.json" for t in OBJECTIVE}
        scores[mid] = (spec.recipe, objective(files))
    grid = {m: v for m, (r, v) in scores.items() if r == "grid"}
    default = {m: v for m, (r, v) in scores.items() if r == "default"}
    best_grid = max(grid, key=grid.get)
    best_default = max(default, key=default.get)
    print(f"objective: {' + '.join(f'{w:g} x {t}' for t, w in OBJECTIVE.items())}, first {args.limit} documents each")
    print(f"search ({args.sampler}, {args.trials} trials, {args.parallel} per generation): best {found:.4f}")
    print(f"grid of {len(grid)} points: best {grid[best_grid]:.4f} ({best_grid})")
    print(f"default recipe ({len(default)} merges): best {default[best_default]:.4f} ({best_default})")
    print(f"search - grid: {found - grid[best_grid]:+.4f}; search - default: {found - default[best_default]:+.4f}")
    print(f"trials reaching the grid's best: {int((trials['objective'] >= grid[best_grid]).sum())} of {len(trials)}")
    log = max((wd / ".snakemake" / "log").glob("*.log"), key=lambda p: p.stat().st_mtime)
    gens = replanning(log, {t: n // args.parallel for n, t in enumerate(trials["model"])})
    shown = lambda secs: f"{secs:.0f} s" if secs else "< 1 s"  # noqa: E731 - the log's stamps are whole seconds
    for gen, secs in gens:
        print(f"generation {gen}: {shown(secs)} from its checkpoint to its first merge (target {TARGET_S:.0f} s)")
    if gens:
        worst = max(s for _, s in gens)
        ratio = f"{worst / TARGET_S:.2f}" if worst else f"< {1 / TARGET_S:.2f}"
        print(f"re-planning per generation: at most {shown(worst)}; ratio to target {ratio}")
    print(f"whole campaign: {wall:.1f} s on {args.cores} cores")


if __name__ == "__main__":
    main()
