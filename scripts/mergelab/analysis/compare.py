"""How the models compare: each merge against its parents and its base, paired over the items
both were evaluated on (the harness tasks) or the datasets both were probed on (Holmes), and each
model's interval of its numbers.

Pure functions of the tidy tables (mergelab.analysis.organize), the per-item results
(mergelab.analysis.item_matrix) and the campaign's catalogue. The normalised scores are
mergelab.analysis.normalised, Kendall's τ mergelab.analysis.kendall, the leaderboard mergelab.analysis.leaderboard.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List

from mergelab.analysis import stats
from mergelab.analysis.item_matrix import is_group, primary_of, reported_values, task_matrix
from mergelab.plan.holmes_sets import UNKNOWN
from mergelab.plan.jobs import Catalogue

log = logging.getLogger("mergelab.compare")


COMPARISON_COLUMNS = [
    "model",
    "parent",
    "relation",
    "recipe",
    "method",
    "harness_task",
    "task",
    "metric",
    "filter",
    "higher_is_better",
    "n",
    "test",
    "merge_value",
    "parent_value",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "correction",
    "alpha",
    "verdict",
    "versus_parents",
]
INTERVAL_COLUMNS = ["model", "harness_task", "task", "metric", "filter", "n", "value", "ci_low", "ci_high"]


def stats_settings(catalogue: Catalogue) -> Dict[str, Any]:
    """The campaign's stats: section (the defaults where a catalogue has none)."""
    return {**stats.DEFAULTS, **catalogue.stats}


def read_items(files: Dict[str, Dict[str, str]]):
    """model -> its per-item results (all its harness tasks, with harness_task), from
    results/harness/{model}/{task}.items.parquet; a file that is missing is named in the log."""
    import pandas as pd

    out = {}
    for model, tasks in (files or {}).items():
        frames = []
        for harness_task, path in tasks.items():
            if not Path(path).is_file():
                log.warning("missing per-item results: %s on %s (%s)", model, harness_task, path)
                continue
            frames.append(pd.read_parquet(path).assign(harness_task=harness_task))
        if frames:
            out[model] = pd.concat(frames, ignore_index=True)
    return out


GROUP_TEST = "; a group: the items of its {k} subtasks, resampled within each"


def merges_in_order(catalogue: Catalogue) -> List[tuple]:
    """(id, info) of every merge, in the config's order (the catalogue's mapping is sorted)."""
    models = catalogue.models
    return [(m, models[m]) for m in catalogue.model_order if models[m].get("role") == "merge"]


def _compared_with(info: Dict[str, Any]) -> List[tuple]:
    """(model, relation) of what a merge is compared with: each parent, and its base."""
    others = [(p, "parent") for p in info.get("parents", [])]
    if info.get("base") and info["base"] not in info.get("parents", []):
        others.append((info["base"], "base"))
    return others


def merge_comparisons(harness, items: Dict[str, Any], catalogue: Catalogue, holmes=None):
    """Every merge against each of its parents (and its base) on every task's primary metric,
    paired over the items both were evaluated on (mergelab.analysis.stats): the difference and its
    bootstrap interval, the p-value of the paired test, the p-value adjusted across the whole
    campaign (stats.correction), the verdict at stats.alpha, and the merge against all its
    parents (versus_parents). With ``holmes`` (the dataset table), each Holmes competence too
    (holmes_comparisons), in the same correction."""
    import pandas as pd

    s = stats_settings(catalogue)
    primary = primary_of(harness)
    reported = reported_values(harness)
    models = catalogue.models
    groups: Dict[tuple, List[tuple]] = {}  # (harness_task, task, metric, filter) -> [(merge, other, relation)]
    for mid, info in merges_in_order(catalogue):
        if info.get("role") != "merge" or mid not in items:
            continue
        others = _compared_with(info)
        pairs = set(zip(items[mid]["harness_task"], items[mid]["task"]))
        pairs |= {(g, g) for g, _ in pairs if is_group(items[mid], g)}  # a group's own headline
        for harness_task, task in sorted(pairs):
            choice = primary.get((mid, harness_task, task))
            if choice is None:
                continue
            for other, relation in others:
                if other not in items:
                    log.warning("no per-item results of %s: %s is not compared with it", other, mid)
                    continue
                groups.setdefault((harness_task, task) + choice[:2], []).append((mid, other, relation, choice[2]))
    rows = []
    for (harness_task, task, metric, filt), pairs in groups.items():
        names = list(dict.fromkeys([m for p in pairs for m in p[:2]]))
        found = task_matrix(items, names, harness_task, task, metric, filt, reported)
        if found is None:
            continue
        values, weights, strata = found
        suffix = "" if strata is None else GROUP_TEST.format(k=len(set(strata)))
        kind = stats.aggregation(metric)
        rng = stats.task_rng(s["seed"], harness_task, task, metric, filt)
        todo = [stats.Pair(names.index(p[0]), names.index(p[1])) for p in pairs]
        results = stats.compare_task(kind, values, weights, todo, s["bootstrap"], s["alpha"], rng, strata)
        for (merge, other, relation, hib), res in zip(pairs, results):
            info = models[merge]
            rows.append(
                {
                    "model": merge,
                    "parent": other,
                    "relation": relation,
                    "recipe": info.get("recipe"),
                    "method": info.get("method"),
                    "harness_task": harness_task,
                    "task": task,
                    "metric": metric,
                    "filter": filt,
                    "higher_is_better": hib,
                    "n": res.n,
                    "test": res.test + suffix if res.test else res.test,
                    "merge_value": res.merge_value,
                    "parent_value": res.parent_value,
                    "diff": res.diff,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "p_value": res.p_value,
                }
            )
    rows += holmes_comparisons(holmes, catalogue)
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    if not table.empty:
        # three families, each adjusted across the whole campaign: the configured harness tasks
        # (groups by their own value), a group's subtasks (mmlu's 57 would otherwise dilute every
        # headline), and the Holmes competences (a handful of datasets each, so rarely
        # significant: in one family with the harness tasks they would only dilute those)
        holmes_rows = is_holmes(table)
        subtask_rows = ~holmes_rows & (table["task"] != table["harness_task"])
        table["p_adjusted"] = float("nan")
        for family in (holmes_rows, subtask_rows, ~holmes_rows & ~subtask_rows):
            p = table.loc[family, "p_value"].to_numpy(float)
            table.loc[family, "p_adjusted"] = stats.adjust(p, s["correction"])
        table["correction"] = s["correction"]
        table["alpha"] = s["alpha"]
        table["verdict"] = [
            stats.verdict(r.diff, r.p_adjusted, s["alpha"], r.higher_is_better) for r in table.itertuples()
        ]
        key = ["model", "harness_task", "task", "metric", "filter"]
        parents = table[table["relation"] == "parent"]
        overall = parents.groupby(key, sort=False)["verdict"].agg(lambda v: stats.versus_parents(list(v)))
        table["versus_parents"] = [overall.get(tuple(k), "") for k in table[key].itertuples(index=False)]
    return table


HOLMES_TEST = "Wilcoxon signed-rank test over the datasets (scipy.stats.wilcoxon)"


def _probed_f1(holmes):
    """The rows of the Holmes dataset table that the comparisons and the mean F1 use: macro-F1,
    probed, of a known competence (Pearson datasets are another scale)."""
    return holmes[(holmes["status"] == "ok") & (holmes["metric"] == "macro_f1") & (holmes["competence"] != UNKNOWN)]


def holmes_comparisons(holmes, catalogue: Catalogue) -> List[Dict[str, Any]]:
    """Every merge against each of its parents (and its base) per Holmes competence (and overall),
    paired over the macro-F1 datasets both were probed on (each dataset's mean over seeds): the mean
    difference with its paired bootstrap interval over the datasets, and the two-sided Wilcoxon
    signed-rank p-value (scipy.stats.wilcoxon; 1 when every difference is zero). Rows as
    merge_comparisons', task "holmes: <competence>"; Pearson datasets are left out (another scale)."""
    import numpy as np
    from scipy.stats import wilcoxon

    if holmes is None or holmes.empty:
        return []

    s = stats_settings(catalogue)
    ok = _probed_f1(holmes)
    if ok.empty:
        return []
    wide = ok.pivot(index="probing_dataset", columns="model", values="mean")
    competence = ok.drop_duplicates("probing_dataset").set_index("probing_dataset")["competence"]
    sets = {c: list(names) for c, names in competence.groupby(competence).groups.items()}
    sets["overall"] = list(competence.index)
    rows = []
    for mid, info in merges_in_order(catalogue):
        if mid not in wide:
            continue
        for other, relation in _compared_with(info):
            if other not in wide:
                continue
            for comp, names in sets.items():
                pair = wide.loc[names, [mid, other]].dropna()
                n = len(pair)
                if n == 0:
                    continue
                a, b = pair[mid].to_numpy(float), pair[other].to_numpy(float)
                rng = stats.task_rng(s["seed"], "holmes", comp, mid, other)
                boot = stats.bootstrap_values("mean", np.vstack([a - b]), np.ones((1, n)), s["bootstrap"], rng)
                lo, hi = stats.percentile_interval(boot, s["alpha"])
                p = 1.0 if np.all(a == b) else float(wilcoxon(a, b).pvalue)
                rows.append(
                    {
                        "model": mid,
                        "parent": other,
                        "relation": relation,
                        "recipe": info.get("recipe"),
                        "method": info.get("method"),
                        "harness_task": f"holmes: {comp}",
                        "task": f"holmes: {comp}",
                        "metric": "macro_f1",
                        "filter": "",
                        "higher_is_better": True,
                        "n": n,
                        "test": HOLMES_TEST,
                        "merge_value": float(a.mean()),
                        "parent_value": float(b.mean()),
                        "diff": float((a - b).mean()),
                        "ci_low": float(lo[0]),
                        "ci_high": float(hi[0]),
                        "p_value": p,
                    }
                )
    return rows


def model_intervals(harness, items: Dict[str, Any], catalogue: Catalogue):
    """Each model's value of every task's primary metric from its per-item results, with its
    (1 - stats.alpha) bootstrap percentile interval over the items: the models with the same
    items share the task's resamples (one matrix product)."""
    import numpy as np
    import pandas as pd

    s = stats_settings(catalogue)
    reported = reported_values(harness)
    groups: Dict[tuple, List[str]] = {}
    for (model, harness_task, task), (metric, filt, _) in primary_of(harness).items():
        if model in items:
            groups.setdefault((harness_task, task, metric, filt), []).append(model)
    rows = []
    for (harness_task, task, metric, filt), names in groups.items():
        found = task_matrix(items, names, harness_task, task, metric, filt, reported)
        if found is None:
            continue
        values, weights, strata = found
        kind = stats.aggregation(metric)
        rng = stats.task_rng(s["seed"], "interval", harness_task, task, metric, filt)
        by_mask: Dict[bytes, List[int]] = {}
        for i in range(len(names)):
            by_mask.setdefault((~np.isnan(values[i])).tobytes(), []).append(i)
        for key, members in by_mask.items():
            ok = np.frombuffer(key, dtype=bool)
            if not ok.any():
                continue
            v, w = values[members][:, ok], weights[members][:, ok]
            st = None if strata is None else strata[ok]
            lo, hi = stats.percentile_interval(stats.bootstrap_values(kind, v, w, s["bootstrap"], rng, st), s["alpha"])
            point = stats.aggregate(kind, v.sum(axis=1), w.sum(axis=1), int(ok.sum()))
            for k, i in enumerate(members):
                rows.append([names[i], harness_task, task, metric, filt, int(ok.sum()), float(point[k])])
                rows[-1] += [float(lo[k]), float(hi[k])]
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def holmes_intervals(holmes, catalogue: Catalogue) -> Dict[str, tuple]:
    """model -> the (1 - stats.alpha) bootstrap percentile interval of its Holmes mean F1 (the
    competence table's overall mean_f1: the macro-F1 datasets of known competence, each the mean
    over its seeds), the datasets resampled."""
    import numpy as np

    if holmes is None or holmes.empty:
        return {}
    s = stats_settings(catalogue)
    ok = _probed_f1(holmes)
    out = {}
    for model, sel in ok.groupby("model", sort=False):
        f1 = sel["mean"].to_numpy(float)
        f1 = f1[~np.isnan(f1)]
        if len(f1) < 2:
            continue
        rng = stats.task_rng(s["seed"], "holmes interval", str(model))
        boot = stats.bootstrap_values("mean", f1[None, :], np.ones((1, len(f1))), s["bootstrap"], rng)
        lo, hi = stats.percentile_interval(boot, s["alpha"])
        out[str(model)] = (float(lo[0]), float(hi[0]))
    return out


def is_holmes(comparisons):
    """The rows of merge_comparisons that compare Holmes competences (task "holmes: ...")."""
    return comparisons["task"].astype(str).str.startswith("holmes: ")
