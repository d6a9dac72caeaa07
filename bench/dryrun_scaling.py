"""`snakemake -n` time for a config that expands to 200 merges (target <= 5 s on 2 cores).

python bench/dryrun_scaling.py [--repeats 3] [--grid 10] [--quick]

--grid N: N values of density and of weight (2 methods x N x N merges).
"""

from __future__ import annotations

import argparse

from common import median, parse_args, snakemake_cmd, timed, workdir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid", type=int, default=10)
    args = parse_args(ap, repeats=1, grid=3)
    grid = [round(0.1 * i, 1) for i in range(1, args.grid + 1)]
    cfg = {
        "models": {"base": {"demo": "base"}, "math": {"demo": "math"}, "words": {"demo": "words"}},
        "merges": [
            {
                "name": "ab",
                "models": ["math", "words"],
                "base": "base",
                "methods": ["ties", "dare_linear"],
                "parameters": {"density": grid, "weight": grid},
            }
        ],
    }
    from mergelab.plan.experiment import load_experiment

    wd, path = workdir("dryrun-200", cfg)
    n = len(load_experiment(cfg, str(path), workdir=wd).merges)
    times = [timed(snakemake_cmd(wd, path, "-n", "--cores", "2")) for _ in range(args.repeats)]
    print(f"merges in the config: {n}")
    print(f"snakemake -n: median {median(times):.2f} s   runs {', '.join(f'{t:.2f}' for t in times)}   (target <= 5 s)")
    cfg["harness"] = {"tasks": ["mergelab_arithmetic", "mergelab_categories", "mergelab_text_ppl"]}
    wd, path = workdir("dryrun-200-eval", cfg)
    times = [timed(snakemake_cmd(wd, path, "-n", "--cores", "2")) for _ in range(args.repeats)]
    print(f"with 3 harness tasks ({n} merges + {3 * (n + 3)} evaluations): snakemake -n median {median(times):.2f} s")


if __name__ == "__main__":
    main()
