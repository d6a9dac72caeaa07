"""Per-item results as matrices: a task's primary metric for several models, models x items
(NaN where a model lacks an item), with the item weights; for a group task (mmlu, leaderboard)
the items of all its subtasks, scaled so that their mean is the group's value as lm-eval
aggregates it. What mergelab.analysis.compare's paired tests and intervals resample.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List

from mergelab.analysis import stats

log = logging.getLogger("mergelab.compare")  # the organize log's lines keep their name


def primary_of(harness) -> Dict[tuple, tuple]:
    """(model, harness_task, task) -> (metric, filter, higher_is_better) of its primary metric."""
    if harness is None or harness.empty:
        return {}
    sel = harness[harness["primary"].astype(bool) & (harness["metric"].fillna("") != "")]
    return {(r.model, r.harness_task, r.task): (r.metric, r.filter, bool(r.higher_is_better)) for r in sel.itertuples()}


def _item_matrix(items: Dict[str, Any], models: List[str], harness_task: str, task: str, metric: str, filt: str):
    """(values, weights): models x documents (the union of their doc_ids; NaN where one lacks it)."""
    import numpy as np
    import pandas as pd

    frames = []
    for m in models:
        it = items[m]
        sel = it[(it["harness_task"] == harness_task) & (it["task"] == task)]
        sel = sel[(sel["metric"] == metric) & (sel["filter"] == filt)]
        frames.append(sel.drop_duplicates("doc_id").set_index("doc_id")[["value", "weight"]].add_suffix(f"|{m}"))
    wide = pd.concat(frames, axis=1).sort_index()
    values = np.vstack([wide[f"value|{m}"].to_numpy(float) for m in models])
    weights = np.vstack([wide[f"weight|{m}"].to_numpy(float) for m in models])
    return values, weights


def reported_values(harness) -> Dict[tuple, float]:
    """(model, harness_task, task, metric, filter) -> the value lm-eval reported."""
    if harness is None or harness.empty:
        return {}
    return {(r.model, r.harness_task, r.task, r.metric, r.filter): r.value for r in harness.itertuples()}


def is_group(items_of_model, harness_task: str) -> bool:
    """A configured task whose per-item results are its subtasks' only (a group: mmlu, leaderboard)."""
    tasks = set(items_of_model.loc[items_of_model["harness_task"] == harness_task, "task"])
    return bool(tasks) and harness_task not in tasks


def _group_matrix(items, models: List[str], harness_task: str, metric: str, filt: str, reported: Dict[tuple, float]):
    """(values, weights, strata) of a group task's headline over the items of all its subtasks
    (keyed by subtask and doc_id; strata: each item's subtask), with the values scaled so that
    their mean is the group's value as lm-eval aggregates it: the mean over all items (a group
    weighted by size, e.g. mmlu) or the mean of its subtasks' means. None where neither gives
    the reported value (a group of groups, a metric that is not a mean): no interval, no test."""
    import numpy as np
    import pandas as pd

    if stats.aggregation(metric) != "mean":
        return None
    frames = []
    for m in models:
        it = items[m]
        sel = it[(it["harness_task"] == harness_task) & (it["metric"] == metric) & (it["filter"] == filt)]
        sel = sel.drop_duplicates(["task", "doc_id"]).set_index(["task", "doc_id"])[["value", "weight"]]
        frames.append(sel.add_suffix(f"|{m}"))
    wide = pd.concat(frames, axis=1).sort_index()
    if wide.empty:
        return None
    values = np.vstack([wide[f"value|{m}"].to_numpy(float) for m in models])
    weights = np.vstack([wide[f"weight|{m}"].to_numpy(float) for m in models])
    strata = wide.index.get_level_values("task").to_numpy(str)
    labels, sizes = np.unique(strata, return_counts=True)
    by_size = np.ones(len(strata))
    of_means = (len(strata) / (len(labels) * sizes))[np.searchsorted(labels, strata)]
    fits = set()  # the aggregations that give every model's reported value
    for i, m in enumerate(models):
        value = reported.get((m, harness_task, harness_task, metric, filt))
        if value is None or value != value or np.isnan(values[i]).any():
            continue
        found = {
            name
            for name, scale in (("size", by_size), ("means", of_means))
            if math.isclose((values[i] * scale).mean(), value, rel_tol=1e-6, abs_tol=1e-9)
        }
        fits = found if not fits else fits & found
        if not fits:
            break
    if not fits:
        log.info("%s: %s of its subtasks' items does not give the group's value: no interval", harness_task, metric)
        return None
    return values * (by_size if "size" in fits else of_means), weights, strata


def task_matrix(items, names: List[str], harness_task: str, task: str, metric: str, filt: str, reported):
    """(values, weights, strata) of one task's primary metric for ``names``: its items, or for a
    group's own row the items of all its subtasks (_group_matrix, strata their subtasks; None
    where those do not give the group's value); strata None otherwise."""
    if task == harness_task and is_group(items[names[0]], harness_task):
        return _group_matrix(items, names, harness_task, metric, filt, reported)
    return (*_item_matrix(items, names, harness_task, task, metric, filt), None)
