"""What the paired statistics cost the organize job (issue 19), on a campaign of the embedded
default's shape: 13 models (base, 2 parents, 10 merges over them with the base), tasks of 100 and
16 binary items and 24 perplexity documents (random per-item results: the cost does not depend
on the values).

    python bench/stats_cost.py [--bootstrap 10000] [--merges 10] [--items 100] [--quick]

Prints the seconds of the model intervals and of the merge comparisons (scipy imported first,
as the organize job has it already).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import scipy.stats  # noqa: F401 - the organize job imports it anyway (Kendall's tau)

from common import parse_args  # puts scripts/ on the path too
from mergelab.analysis import compare
from mergelab.analysis.harness_rows import HARNESS_COLUMNS
from mergelab.plan.jobs import Catalogue


def campaign(merges: int, items: int, bootstrap: int):
    rng = np.random.default_rng(0)
    names = [f"m{i}" for i in range(merges)]
    models = {"base": {"role": "base"}, "math": {"role": "parent"}, "words": {"role": "parent"}}
    models.update({m: {"role": "merge", "parents": ["math", "words"], "base": "base"} for m in names})
    stats = {"alpha": 0.05, "bootstrap": bootstrap, "correction": "holm", "seed": 0}
    catalogue = Catalogue(models=models, model_order=list(models), harness={}, holmes={}, stats=stats)
    tasks = (("arithmetic", "exact_match", items, True), ("categories", "acc_norm", 16, True))
    tasks += (("text_ppl", "word_perplexity", 24, False),)
    frames, rows = {}, []
    for m in models:
        parts = []
        for task, metric, n, hib in tasks:
            if metric == "word_perplexity":
                w = rng.integers(10, 60, n).astype(float)
                v = -w * rng.normal(4, 0.3, n)
            else:
                w, v = np.ones(n), (rng.random(n) < 0.5).astype(float)
            part = pd.DataFrame({"task": task, "doc_id": range(n), "filter": "none", "metric": metric})
            parts.append(part.assign(value=v, weight=w, harness_task=task))
            rows.append(
                {"model": m, "harness_task": task, "task": task, "metric": metric, "filter": "none"}
                | {"primary": True, "higher_is_better": hib, "value": 0.0, "status": "ok"}
            )
        frames[m] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(rows, columns=HARNESS_COLUMNS), frames, catalogue


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", type=int, default=10000)
    ap.add_argument("--merges", type=int, default=10)
    ap.add_argument("--items", type=int, default=100)
    args = parse_args(ap, bootstrap=200, merges=2, items=20)
    harness, items, catalogue = campaign(args.merges, args.items, args.bootstrap)
    t0 = time.perf_counter()
    intervals = compare.model_intervals(harness, items, catalogue)
    t1 = time.perf_counter()
    table = compare.merge_comparisons(harness, items, catalogue)
    t2 = time.perf_counter()
    print(f"{len(intervals)} model intervals: {t1 - t0:.2f} s; {len(table)} comparisons: {t2 - t1:.2f} s")
    print(f"({args.bootstrap} resamples; tests: {', '.join(sorted(set(table['test'])))})")


if __name__ == "__main__":
    main()
