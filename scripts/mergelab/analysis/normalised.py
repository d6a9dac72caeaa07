"""Normalised scores: how much of its best parent's gain over the base a merge keeps (the gain
retention), and the merge relative to its best parent, per configured task and on average.
"""

from __future__ import annotations

import math

from mergelab.analysis.compare import merges_in_order
from mergelab.analysis.harness_rows import headline
from mergelab.plan.jobs import Catalogue

NORMALISED_COLUMNS = [
    "model",
    "recipe",
    "method",
    "base",
    "best_parent",
    "harness_task",
    "metric",
    "filter",
    "higher_is_better",
    "merge_value",
    "base_value",
    "best_parent_value",
    "gain_retention",
    "relative_to_best",
]
MEAN_ROW = "mean over tasks"


def normalised_scores(harness, catalogue: Catalogue):
    """For every merge with a base, per configured task (primary metric): the gain retention
    (merge - base) / (best parent - base), the share of the best parent's gain over the base that
    the merge keeps (the same formula whichever way the metric points), and the merge relative to
    its best parent (merge / best parent; best parent / merge when lower is better, so that above
    1 is better either way); then a row per merge with the mean of both over its tasks."""
    import pandas as pd

    rows = []
    if harness is not None and not harness.empty:
        head = headline(harness)
        value = {(r.model, r.harness_task): r for r in head.itertuples()}
        for mid, info in merges_in_order(catalogue):
            base = info.get("base")
            if not base:
                continue
            mine = []
            for task in dict.fromkeys(head["harness_task"]):
                m, b = value.get((mid, task)), value.get((base, task))
                parents = [value[(p, task)] for p in info.get("parents", []) if (p, task) in value]
                parents = [p for p in parents if not math.isnan(p.value)]
                if m is None or b is None or not parents or math.isnan(m.value):
                    continue
                hib = bool(m.higher_is_better)
                best = max(parents, key=lambda p: p.value if hib else -p.value)
                gain = best.value - b.value
                mine.append(
                    {
                        "model": mid,
                        "recipe": info.get("recipe"),
                        "method": info.get("method"),
                        "base": base,
                        "best_parent": best.model,
                        "harness_task": task,
                        "metric": m.metric,
                        "filter": m.filter,
                        "higher_is_better": hib,
                        "merge_value": m.value,
                        "base_value": b.value,
                        "best_parent_value": best.value,
                        "gain_retention": (m.value - b.value) / gain if gain else math.nan,
                        "relative_to_best": _ratio(m.value, best.value) if hib else _ratio(best.value, m.value),
                    }
                )
            if mine:
                frame = pd.DataFrame(mine)
                summary = {"model": mid, "recipe": info.get("recipe"), "method": info.get("method"), "base": base}
                summary.update(harness_task=MEAN_ROW, gain_retention=frame["gain_retention"].mean())
                summary["relative_to_best"] = frame["relative_to_best"].mean()
                rows += mine + [summary]
    return pd.DataFrame(rows, columns=NORMALISED_COLUMNS)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan
