"""Holmes probing speed: the vectorised trainer vs a plain per-seed PyTorch loop, and encoding throughput.

    python bench/holmes_probing.py [--datasets 40] [--width 256] [--max-train N] [--device cpu] [--sizes demo,bench]
                                   [--quick]

Probing: N synthetic datasets shaped like Flash-Holmes' (train 100-1600 rows,
2-5 classes, one in eight a regression; --max-train caps the rows), 5 seeds each, trained by
mergelab.evaluate.probe.train_probes and by train_probe_plain (the same method, one seed
at a time); prints both wall times, their ratio (target >= 20x) and the largest
difference of a dataset's mean score.
Encoding: the embedded probing set's unique texts through a demo-size and a
bench-size (56M) model (--sizes) with mergelab.evaluate.holmes_encode; prints sentences per second.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np

from common import OUT, demo_models, parse_args


def synthetic_tasks(n: int, width: int, seed: int = 0, max_train: int = 0):
    import torch

    from mergelab.evaluate.probe import ProbeTask

    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        regression = i % 8 == 7
        k = 1 if regression else rng.choice([2, 2, 3, 5])
        n_train = rng.choice([100, 200, 400, 800, 1600])
        n_train = min(n_train, max_train) if max_train else n_train
        g = torch.Generator().manual_seed(seed * 1000 + i)
        centers = torch.randn(max(k, 2), width, generator=g) * 0.3
        w = torch.randn(width, generator=g) / width**0.5

        def part(m):
            x = torch.randn(m, width, generator=g)
            if regression:
                return x, x @ w + 0.3 * torch.randn(m, generator=g)
            y = torch.randint(0, k, (m,), generator=g)
            return x + centers[y], y

        tasks.append(
            ProbeTask(f"d{i:03d}", k, *part(n_train), *part(max(20, n_train // 4)), *part(max(40, n_train // 2)))
        )
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=40)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--max-train", type=int, default=0, help="at most this many training rows a dataset (0: no cap)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-encoding", action="store_true")
    ap.add_argument("--sizes", default="demo,bench", help="the models encoding is timed on")
    args = parse_args(ap, datasets=2, width=16, max_train=50, sizes="tiny")

    from mergelab.evaluate.probe import train_probe_plain, train_probes

    seeds = [0, 1, 2, 3, 4]
    tasks = synthetic_tasks(args.datasets, args.width, max_train=args.max_train)
    t0 = time.perf_counter()
    vec = train_probes(tasks, seeds, device=args.device)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = [train_probe_plain(t, s, device=args.device) for t in tasks for s in seeds]
    t_plain = time.perf_counter() - t0
    diffs = []
    for t in tasks:
        a = np.mean([r.score for r in vec if r.name == t.name])
        b = np.mean([r.score for r in plain if r.name == t.name])
        diffs.append(abs(a - b))
    print(f"probing: {args.datasets} datasets x {len(seeds)} seeds, width {args.width}, device {args.device}")
    print(f"  plain per-seed loop {t_plain:8.2f} s")
    print(f"  vectorised          {t_vec:8.2f} s")
    print(
        f"  speed ratio {t_plain / t_vec:.1f}x (target >= 20x); largest |mean score difference| "
        f"{max(diffs):.4f}, mean {np.mean(diffs):.4f}"
    )
    if args.skip_encoding:
        return
    import torch

    from mergelab.embedded.holmes_demo import DATASETS, write_demo_set
    from mergelab.evaluate.holmes_data import read_dataset
    from mergelab.evaluate.holmes_encode import Requests, encode, load_encoder, row_requests

    folder = OUT / "holmes-demo"
    write_demo_set(folder)
    data = [read_dataset(folder / d[0]) for d in DATASETS]
    torch.set_num_threads(2)
    for size in args.sizes.split(","):
        model, tok, max_length = load_encoder(str(demo_models(size) / "base"), "float32", args.device)
        req = Requests()
        for ds in data:
            row_requests(ds, req, "")
        encode(model, tok, req, batch_size=32, max_length=max_length)  # warm-up
        t0 = time.perf_counter()
        encode(model, tok, req, batch_size=32, max_length=max_length)
        dt = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"encoding: {len(req.texts)} unique texts, {size} model ({params:.1f}M), {args.device}: "
            f"{dt:.2f} s = {len(req.texts) / dt:.0f} sentences/s"
        )


if __name__ == "__main__":
    sys.exit(main())
