"""Paired statistics: is a merge better than its parent on the same items?

Every model of a campaign is evaluated on the same items, so a merge and a parent are
compared item by item (results/harness/{model}/{task}.items.parquet):

- the difference of the task's metric (merge - parent) on the items both have, with a
  paired bootstrap percentile interval (the items resampled with replacement, the same
  resample for both models; ``bootstrap`` resamples);
- a two-sided p-value: the exact McNemar test (a binomial test on the discordant pairs,
  scipy.stats.binomtest) for a 0/1 metric; the paired sign-flip permutation test of the
  mean difference otherwise (exact when 2^n <= ``bootstrap``, as scipy.stats.permutation_test
  computes it); for a corpus metric (perplexity, bits per byte: not a mean of per-item
  values) the bootstrap over documents (twice the smaller share of resampled differences
  on either side of zero);
- the p-values adjusted across the campaign (holm, bh or none), and a verdict: better or
  worse (respecting lower-is-better) when the adjusted p-value is below ``alpha``, else
  indistinguishable.

Vectorised: the resamples of a task are drawn once (seeded by the seed and the task's name)
as a matrix of counts, and every model's resampled value is one matrix product.

numpy and scipy only; imported by the organize job, never while the DAG is built.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

DEFAULTS = {"alpha": 0.05, "bootstrap": 10000, "correction": "holm", "seed": 0}

# lm-eval's aggregations that are not the mean of the per-item values (lm_eval.api.metrics):
# the per-item values of the first two are (loglikelihood, words or bytes) pairs, stored as
# value and weight in the per-item results (mergelab.evaluate.items.item_rows)
CORPUS = {
    "word_perplexity": "weighted_perplexity",
    "byte_perplexity": "weighted_perplexity",
    "bits_per_byte": "bits_per_byte",
    "perplexity": "perplexity",
}

TESTS = {
    "mcnemar": "exact McNemar (binomial test on the discordant items)",
    "sign_flip": "paired sign-flip permutation test of the mean difference",
    "bootstrap": "paired bootstrap over documents",
}

# values per block of resamples: bounds the memory of a task with many items
BLOCK = 2_000_000


def aggregation(metric: str) -> str:
    """How lm-eval aggregates a metric's per-item values: mean, or a CORPUS aggregation."""
    return CORPUS.get(metric, "mean")


def aggregate(kind: str, value_sums, weight_sums, n) -> np.ndarray:
    """The metric from sums over items (of value, of weight) and the number of items; works on
    arrays of sums (one per resample), as lm-eval's aggregation does on one set of items."""
    value_sums = np.asarray(value_sums, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "mean":
            return value_sums / n
        if kind == "weighted_perplexity":
            return np.exp(-value_sums / np.asarray(weight_sums, dtype=float))
        if kind == "bits_per_byte":
            return -value_sums / np.asarray(weight_sums, dtype=float) / math.log(2)
        if kind == "perplexity":
            return np.exp(-value_sums / n)
    raise ValueError(f"unknown aggregation {kind!r}")


def metric_value(kind: str, values, weights=None) -> float:
    """The metric of one set of items (as lm-eval reports it for that set)."""
    values = np.asarray(values, dtype=float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    return float(aggregate(kind, values.sum(), weights.sum(), len(values)))


def task_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator for one task's resamples: the same for the same seed and key, whatever else
    the campaign holds (adding a merge changes none of the others' intervals)."""
    words = [zlib.crc32("\x1f".join(key).encode("utf-8"))]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def count_blocks(
    n: int, resamples: int, rng: np.random.Generator, strata: Optional[np.ndarray] = None
) -> Iterator[np.ndarray]:
    """The bootstrap resamples of n items, as blocks of a (resamples x n) matrix of counts: how
    often each item is drawn in each resample. With ``strata`` (a label per item: a group task's
    subtasks), each resample draws within each stratum as many items as it has."""
    rows = max(1, BLOCK // max(n, 1))
    parts = None if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    done = 0
    while done < resamples:
        k = min(rows, resamples - done)
        if parts is None:
            yield _draws(k, n, rng).astype(float)
        else:
            counts = np.zeros((k, n))
            for ix in parts:
                counts[:, ix] = _draws(k, len(ix), rng)
            yield counts
        done += k


def _draws(k: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """(k x m): how often each of m items is drawn in each of k resamples of m draws."""
    idx = rng.integers(0, m, size=(k, m))
    flat = idx + (np.arange(k)[:, None] * m)
    return np.bincount(flat.ravel(), minlength=k * m).reshape(k, m)


def bootstrap_values(
    kind: str,
    values: np.ndarray,
    weights: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    strata: Optional[np.ndarray] = None,
) -> np.ndarray:
    """(resamples x models): each model's metric on each bootstrap resample of the items.
    values, weights: (models x items), the items in the same order for every model; strata:
    see count_blocks."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    n = values.shape[1]
    out = []
    for counts in count_blocks(n, resamples, rng, strata):
        out.append(aggregate(kind, counts @ values.T, counts @ weights.T, n))
    return np.concatenate(out, axis=0)


def percentile_interval(boot: np.ndarray, alpha: float) -> Tuple[np.ndarray, np.ndarray]:
    """The (1 - alpha) percentile interval of each column of ``boot``."""
    lo, hi = np.nanpercentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return lo, hi


def bootstrap_p(boot: np.ndarray) -> np.ndarray:
    """Two-sided p-value of each column of bootstrap differences: twice the smaller share of
    resamples on either side of zero (the interval's inversion: p < alpha when the (1 - alpha)
    percentile interval excludes zero), with the +1 of a Monte Carlo p-value."""
    b = np.sum(~np.isnan(boot), axis=0)
    below = (np.sum(boot <= 0, axis=0) + 1) / (b + 1)
    above = (np.sum(boot >= 0, axis=0) + 1) / (b + 1)
    return np.clip(2 * np.minimum(below, above), 0, 1)


def sign_flip_p(diffs: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sided p-values of the paired sign-flip permutation test of the mean difference, one
    per row of ``diffs`` (comparisons x items), as scipy.stats.permutation_test
    (permutation_type="samples") computes them: exact over all 2^n sign vectors when 2^n <=
    ``resamples``, else ``resamples`` random ones with the +1 of a Monte Carlo p-value."""
    diffs = np.atleast_2d(np.asarray(diffs, dtype=float))
    n = diffs.shape[1]
    observed = diffs.mean(axis=1)
    gamma = np.abs(np.finfo(float).eps * 100 * observed)  # scipy's tolerance for equal statistics
    exact = n <= 30 and 2**n <= resamples
    total, extra = (2**n, 0) if exact else (resamples, 1)
    rows = max(1, BLOCK // max(n, 1))
    less = np.zeros(len(diffs))
    greater = np.zeros(len(diffs))
    for start in range(0, total, rows):
        k = min(rows, total - start)
        if exact:  # the bits of start .. start + k - 1: every sign vector once
            signs = 1 - 2 * ((np.arange(start, start + k)[:, None] >> np.arange(n)) & 1)
        else:
            signs = 1 - 2 * rng.integers(0, 2, size=(k, n))
        null = signs.astype(float) @ diffs.T / n  # (block x comparisons)
        less += np.sum(null <= observed + gamma, axis=0)
        greater += np.sum(null >= observed - gamma, axis=0)
    p_less = (less + extra) / (total + extra)
    p_greater = (greater + extra) / (total + extra)
    return np.clip(2 * np.minimum(p_less, p_greater), 0, 1)


def mcnemar_p(merge: np.ndarray, parent: np.ndarray) -> float:
    """Exact McNemar test of paired 0/1 outcomes: a two-sided binomial test (p = 1/2) of the
    items only the merge gets right among the items exactly one of the two gets right."""
    from scipy.stats import binomtest

    merge, parent = np.asarray(merge) > 0.5, np.asarray(parent) > 0.5
    only_merge = int(np.sum(merge & ~parent))
    only_parent = int(np.sum(~merge & parent))
    if only_merge + only_parent == 0:
        return 1.0
    return float(binomtest(only_merge, only_merge + only_parent, 0.5).pvalue)


def is_binary(values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(np.all((values == 0) | (values == 1)))


def adjust(p_values: Sequence[float], method: str) -> np.ndarray:
    """p-values adjusted for multiple comparisons: holm (Holm's step-down, family-wise error
    rate), bh (Benjamini-Hochberg step-up, false discovery rate) or none. NaN stays NaN and
    does not count as a comparison."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    if method == "none":
        out[ok] = p[ok]
        return out
    q = p[ok]
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1)) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r} (holm, bh or none)")
    res = np.empty(m)
    res[order] = np.clip(adj, 0, 1)
    out[ok] = res
    return out


def verdict(diff: float, p_adjusted: float, alpha: float, higher_is_better: bool) -> str:
    """better / worse when significant (respecting lower-is-better), else indistinguishable;
    '' when there is nothing to test."""
    if p_adjusted is None or math.isnan(p_adjusted) or math.isnan(diff):
        return ""
    if p_adjusted >= alpha or diff == 0:
        return "indistinguishable"
    return "better" if (diff > 0) == bool(higher_is_better) else "worse"


def versus_parents(verdicts: Sequence[str]) -> str:
    """A merge against all its parents, from the comparisons with each: better than all, worse
    than all, between (better than one, worse than another), else undecided."""
    v = [x for x in verdicts if x]
    if not v or len(v) < len(verdicts):
        return ""
    if all(x == "better" for x in v):
        return "better than all"
    if all(x == "worse" for x in v):
        return "worse than all"
    if "better" in v and "worse" in v:
        return "between"
    return "undecided"


@dataclass(frozen=True)
class Pair:
    """One paired comparison to compute: rows of the task's item matrix."""

    merge: int
    parent: int


@dataclass
class PairResult:
    n: int
    merge_value: float
    parent_value: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str


def compare_task(
    kind: str,
    values: np.ndarray,
    weights: np.ndarray,
    pairs: List[Pair],
    resamples: int,
    alpha: float,
    rng: np.random.Generator,
    strata: Optional[np.ndarray] = None,
) -> List[PairResult]:
    """Every pair's paired comparison on one task's items. values, weights: (models x items),
    the same items in the same order for every model (NaN where a model lacks an item: a pair
    is compared on the items both have); strata: a label per item, resampled within each (a
    group task's subtasks)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    results: List[Optional[PairResult]] = [None] * len(pairs)
    # pairs with the same items share one set of resamples (the task's): one matrix product
    by_mask: Dict[bytes, List[int]] = {}
    for i, pair in enumerate(pairs):
        mask = ~np.isnan(values[pair.merge]) & ~np.isnan(values[pair.parent])
        by_mask.setdefault(mask.tobytes(), []).append(i)
    for key, members in by_mask.items():
        mask = np.frombuffer(key, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            for i in members:
                results[i] = PairResult(0, *(math.nan,) * 6, "")
            continue
        models = sorted({m for i in members for m in (pairs[i].merge, pairs[i].parent)})
        col = {m: j for j, m in enumerate(models)}
        v, w = values[models][:, mask], weights[models][:, mask]
        boot = bootstrap_values(kind, v, w, resamples, rng, None if strata is None else strata[mask])
        point = aggregate(kind, v.sum(axis=1), w.sum(axis=1), n)
        diffs = np.stack([boot[:, col[pairs[i].merge]] - boot[:, col[pairs[i].parent]] for i in members], axis=1)
        lo, hi = percentile_interval(diffs, alpha)
        if kind == "mean":
            item_diffs = np.stack([v[col[pairs[i].merge]] - v[col[pairs[i].parent]] for i in members])
            binary = [is_binary(v[col[pairs[i].merge]]) and is_binary(v[col[pairs[i].parent]]) for i in members]
            flip = [k for k, b in enumerate(binary) if not b]
            p = np.full(len(members), np.nan)
            if flip:
                p[flip] = sign_flip_p(item_diffs[flip], resamples, rng)
            for k, b in enumerate(binary):
                if b:
                    p[k] = mcnemar_p(v[col[pairs[members[k]].merge]], v[col[pairs[members[k]].parent]])
            tests = [TESTS["mcnemar"] if b else TESTS["sign_flip"] for b in binary]
        else:
            p = bootstrap_p(diffs)
            tests = [TESTS["bootstrap"]] * len(members)
        for k, i in enumerate(members):
            a, b = float(point[col[pairs[i].merge]]), float(point[col[pairs[i].parent]])
            results[i] = PairResult(n, a, b, a - b, float(lo[k]), float(hi[k]), float(p[k]), tests[k])
    return results  # type: ignore[return-value]


def t_interval(values: Sequence[float], alpha: float) -> Tuple[float, float, float, int]:
    """Mean and its (1 - alpha) t-interval (scipy.stats.t) of a few values (Holmes' seeds):
    (mean, low, high, n); the interval is NaN with fewer than two values."""
    from scipy.stats import t

    x = np.asarray([v for v in values if v == v], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(t.ppf(1 - alpha / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n
