"""Peak disk of a sweep with storage.keep_merges: none against keeping every merge (issue 17).

    python bench/keep_merges.py [--merges 12] [--gpus 2] [--size tiny|demo|bench] [--quick]

Builds the demo parents at --size once under bench/out/ (random weights but for "demo"),
then runs a sweep of --merges task_arithmetic merges (weights 0.1, 0.2, ...), each
evaluated on one harness task, with `--cores 2 --resources gpu=N` and keep_merges: none,
from nothing to the tables. A thread samples results/models/ every 50 ms (merge
directories and the bytes under it, temporary directories of merges being written
included). Prints the peak number of merges held at once against the target (gpu + 2),
and the peak bytes against all merges' bytes (what keep_merges: all holds at the end,
from the records' weights.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from common import demo_models, env, parse_args, snakemake_cmd, workdir


def held(models: Path) -> tuple:
    """(merge directories, bytes) under results/models/ now."""
    count, size = 0, 0
    try:
        entries = list(os.scandir(models))
    except FileNotFoundError:
        return 0, 0
    for e in entries:
        if not e.is_dir():
            continue
        count += 1
        for root, _, files in os.walk(e.path):
            for f in files:
                try:
                    size += os.stat(os.path.join(root, f)).st_size
                except FileNotFoundError:  # deleted while we looked
                    pass
    return count, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--merges", type=int, default=12)
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--size", default="tiny")
    args = parse_args(ap, merges=2, gpus=2)

    parents = demo_models(args.size)
    weights = [round(0.1 * (i + 1), 2) for i in range(args.merges)]
    cfg = {
        "models": {n: {"path": str(parents / n)} for n in ("base", "math", "words")},
        "merges": [
            {
                "name": "sweep",
                "models": ["math", "words"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "parameters": {"weight": weights},
            }
        ],
        "evaluation": {"models": ["sweep"]},
        "harness": {"tasks": ["mergelab_categories"], "settings": {"limit": 8, "batch_size": 8, "bootstrap_iters": 0}},
        "holmes": {"activate": False},
        "storage": {"keep_merges": "none"},
    }
    wd, path = workdir("keep-merges", cfg)
    for d in ("results", "logs", "benchmarks", ".snakemake"):
        shutil.rmtree(wd / d, ignore_errors=True)

    peak = {"count": 0, "bytes": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            c, b = held(wd / "results" / "models")
            peak["count"], peak["bytes"] = max(peak["count"], c), max(peak["bytes"], b)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    cmd = snakemake_cmd(wd, path, "--cores", "2", "--resources", f"gpu={args.gpus}")
    subprocess.run(cmd, check=True, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()

    records = sorted((wd / "results" / "records").glob("*/weights.json"))
    total = sum(json.loads(r.read_text())["total_bytes"] for r in records)
    left = held(wd / "results" / "models")
    target = args.gpus + 2
    print(f"{len(records)} merges (size {args.size}), --resources gpu={args.gpus}, keep_merges: none; {wall:.1f} s")
    print(
        f"peak merges held at once: {peak['count']} of {len(records)} (target <= gpu + 2 = {target}: "
        f"{'met' if peak['count'] <= target else 'missed'})"
    )
    print(f"peak bytes under results/models/: {peak['bytes']} / all merges {total} = {peak['bytes'] / total:.2f}")
    print(f"left at the end: {left[0]} merges, {left[1]} bytes")


if __name__ == "__main__":
    main()
