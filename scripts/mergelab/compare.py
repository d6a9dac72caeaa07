"""How the models compare: each merge against its parents, the rankings by Holmes and by the
harness against each other (Kendall's τ), and the leaderboard.

Pure functions of the tidy tables (mergelab.organize) and the campaign's catalogue.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List

from mergelab.organize import headline

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


def stats_settings(context: Dict[str, Any]) -> Dict[str, Any]:
    """The campaign's stats: section (the defaults where a catalogue has none)."""
    from mergelab.stats import DEFAULTS

    return {**DEFAULTS, **(context.get("stats") or {})}


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


def _primary_of(harness) -> Dict[tuple, tuple]:
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


GROUP_TEST = "; a group: the items of its {k} subtasks, resampled within each"


def _reported(harness) -> Dict[tuple, float]:
    """(model, harness_task, task, metric, filter) -> the value lm-eval reported."""
    if harness is None or harness.empty:
        return {}
    return {(r.model, r.harness_task, r.task, r.metric, r.filter): r.value for r in harness.itertuples()}


def _is_group(items_of_model, harness_task: str) -> bool:
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

    from mergelab import stats

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


def _task_matrix(items, names: List[str], harness_task: str, task: str, metric: str, filt: str, reported):
    """(values, weights, strata) of one task's primary metric for ``names``: its items, or for a
    group's own row the items of all its subtasks (_group_matrix, strata their subtasks; None
    where those do not give the group's value); strata None otherwise."""
    if task == harness_task and _is_group(items[names[0]], harness_task):
        return _group_matrix(items, names, harness_task, metric, filt, reported)
    return (*_item_matrix(items, names, harness_task, task, metric, filt), None)


def _merges(context: Dict[str, Any]) -> List[tuple]:
    """(id, info) of every merge, in the config's order (the catalogue's mapping is sorted)."""
    models = context["models"]
    order = context.get("model_order") or list(models)
    return [(m, models[m]) for m in order if models[m].get("role") == "merge"]


def _compared_with(info: Dict[str, Any]) -> List[tuple]:
    """(model, relation) of what a merge is compared with: each parent, and its base."""
    others = [(p, "parent") for p in info.get("parents", [])]
    if info.get("base") and info["base"] not in info.get("parents", []):
        others.append((info["base"], "base"))
    return others


def merge_comparisons(harness, items: Dict[str, Any], context: Dict[str, Any], holmes=None):
    """Every merge against each of its parents (and its base) on every task's primary metric,
    paired over the items both were evaluated on (mergelab.stats): the difference and its
    bootstrap interval, the p-value of the paired test, the p-value adjusted across the whole
    campaign (stats.correction), the verdict at stats.alpha, and the merge against all its
    parents (versus_parents). With ``holmes`` (the dataset table), each Holmes competence too
    (holmes_comparisons), in the same correction."""
    import pandas as pd

    from mergelab import stats

    s = stats_settings(context)
    primary = _primary_of(harness)
    reported = _reported(harness)
    models = context["models"]
    groups: Dict[tuple, List[tuple]] = {}  # (harness_task, task, metric, filter) -> [(merge, other, relation)]
    for mid, info in _merges(context):
        if info.get("role") != "merge" or mid not in items:
            continue
        others = _compared_with(info)
        pairs = set(zip(items[mid]["harness_task"], items[mid]["task"]))
        pairs |= {(g, g) for g, _ in pairs if _is_group(items[mid], g)}  # a group's own headline
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
        found = _task_matrix(items, names, harness_task, task, metric, filt, reported)
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
    rows += holmes_comparisons(holmes, context)
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
    from mergelab.holmes_data import UNKNOWN

    return holmes[(holmes["status"] == "ok") & (holmes["metric"] == "macro_f1") & (holmes["competence"] != UNKNOWN)]


def holmes_comparisons(holmes, context: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every merge against each of its parents (and its base) per Holmes competence (and overall),
    paired over the macro-F1 datasets both were probed on (each dataset's mean over seeds): the mean
    difference with its paired bootstrap interval over the datasets, and the two-sided Wilcoxon
    signed-rank p-value (scipy.stats.wilcoxon; 1 when every difference is zero). Rows as
    merge_comparisons', task "holmes: <competence>"; Pearson datasets are left out (another scale)."""
    import numpy as np
    from scipy.stats import wilcoxon

    from mergelab import stats

    if holmes is None or holmes.empty:
        return []

    s = stats_settings(context)
    ok = _probed_f1(holmes)
    if ok.empty:
        return []
    wide = ok.pivot(index="probing_dataset", columns="model", values="mean")
    competence = ok.drop_duplicates("probing_dataset").set_index("probing_dataset")["competence"]
    sets = {c: list(names) for c, names in competence.groupby(competence).groups.items()}
    sets["overall"] = list(competence.index)
    rows = []
    for mid, info in _merges(context):
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


def model_intervals(harness, items: Dict[str, Any], context: Dict[str, Any]):
    """Each model's value of every task's primary metric from its per-item results, with its
    (1 - stats.alpha) bootstrap percentile interval over the items: the models with the same
    items share the task's resamples (one matrix product)."""
    import numpy as np
    import pandas as pd

    from mergelab import stats

    s = stats_settings(context)
    reported = _reported(harness)
    groups: Dict[tuple, List[str]] = {}
    for (model, harness_task, task), (metric, filt, _) in _primary_of(harness).items():
        if model in items:
            groups.setdefault((harness_task, task, metric, filt), []).append(model)
    rows = []
    for (harness_task, task, metric, filt), names in groups.items():
        found = _task_matrix(items, names, harness_task, task, metric, filt, reported)
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


def normalised_scores(harness, context: Dict[str, Any]):
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
        for mid, info in _merges(context):
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


def kendall_table(harness, holmes, competences, level: str = "competence"):
    """Kendall's tau-b (scipy.stats.kendalltau) between model rankings: Holmes (winning rate per
    competence, or mean score per dataset) against each harness task's primary metric, oriented so
    that higher is better. One row per pair with n (models with both values), tau and the p-value;
    NaN with fewer than 3 models or when a ranking is all ties."""
    import pandas as pd
    from scipy.stats import kendalltau

    columns = ["holmes", "harness_task", "n", "tau", "p_value"]
    if harness is None or harness.empty:
        return pd.DataFrame(columns=columns)
    head = headline(harness)
    tasks = {}
    for t in dict.fromkeys(head["harness_task"]):
        sel = head[head["harness_task"] == t].set_index("model")
        sign = 1 if sel["higher_is_better"].astype(bool).all() else -1
        tasks[t] = sel["value"].astype(float) * sign
    if level == "competence":
        rows = (
            {
                c: competences[competences["competence"] == c].set_index("model")["winning_rate"]
                for c in dict.fromkeys(competences["competence"])
            }
            if competences is not None
            else {}
        )
    else:
        rows = (
            {
                d: holmes[holmes["probing_dataset"] == d].set_index("model")["mean"]
                for d in dict.fromkeys(holmes["probing_dataset"])
            }
            if holmes is not None
            else {}
        )
    records = []
    for r, hv in rows.items():
        for t, tv in tasks.items():
            both = pd.concat([hv.astype(float).rename("h"), tv.rename("t")], axis=1).dropna()
            tau, p = kendalltau(both["h"], both["t"]) if len(both) >= 3 else (math.nan, math.nan)
            records.append({"holmes": r, "harness_task": t, "n": len(both), "tau": float(tau), "p_value": float(p)})
    return pd.DataFrame(records, columns=columns)


MARKS = {"better than all": " ▲", "between": " ●", "worse than all": " ▼"}


def holmes_intervals(holmes, context: Dict[str, Any]) -> Dict[str, tuple]:
    """model -> the (1 - stats.alpha) bootstrap percentile interval of its Holmes mean F1 (the
    competence table's overall mean_f1: the macro-F1 datasets of known competence, each the mean
    over its seeds), the datasets resampled."""
    import numpy as np

    from mergelab import stats

    if holmes is None or holmes.empty:
        return {}
    s = stats_settings(context)
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


HOLMES_OVERALL = "holmes: overall"


def leaderboard_table(harness, competences, comparisons, context: Dict[str, Any], holmes=None):
    """models x headline numbers with their intervals, as text; a merge marked against its
    parents only where the paired comparisons say so (significant after the correction).
    results/tables/leaderboard.csv (the report's first page), and leaderboard.md's table.
    ``holmes`` (the dataset table) gives the Holmes mean F1 its interval over the datasets."""
    import pandas as pd

    cols: List[str] = []
    values: Dict[str, Dict[str, str]] = {}
    head = headline(harness) if harness is not None and not harness.empty else None
    if head is not None:
        # one column per task, named by its primary metric; a missing result (no metric
        # known) is a gap in its task's column, never a column of its own
        named = {}
        for r in head.itertuples():
            if r.metric and r.harness_task not in named:
                named[r.harness_task] = (
                    f"{r.harness_task} ({r.metric}{'' if r.filter in ('none', '') else ', ' + r.filter})"
                )
        for r in head.itertuples():
            col = named.get(r.harness_task, r.harness_task)
            if col not in cols:
                cols.append(col)
            mark = MARKS.get(_versus_parents_of(comparisons, r.model, r.harness_task), "")
            text = (
                "broken"
                if r.status == "broken" and math.isnan(r.value)
                else _fmt(r.value, r.stderr, (r.ci_low, r.ci_high))
            )
            values.setdefault(r.model, {})[col] = text + mark
    if competences is not None and not competences.empty:
        intervals = holmes_intervals(holmes, context)
        for r in competences.itertuples():
            if r.competence == "overall":
                mark = MARKS.get(_versus_parents_of(comparisons, r.model, HOLMES_OVERALL), "")
                ci = intervals.get(r.model)
                for col, text in (
                    ("Holmes winning rate", _fmt(r.winning_rate)),
                    ("Holmes mean F1", _fmt(r.mean_f1, ci=ci) + ("" if math.isnan(r.mean_f1) else mark)),
                ):
                    if col not in cols:
                        cols.append(col)
                    values.setdefault(r.model, {})[col] = text
    models = context.get("model_order") or list(context["models"])
    broken = context.get("broken") or {}
    rows = []
    for m in models:
        if m in values:
            role = context["models"][m].get("role", "") + (" (broken)" if m in broken else "")
            rows.append([m, role] + [values[m].get(c, "–") for c in cols])
    return pd.DataFrame(rows, columns=["model", "role"] + cols)


def leaderboard(table, comparisons, context: Dict[str, Any]) -> str:
    """Markdown: the leaderboard ``table`` (leaderboard_table) and what its numbers and marks mean."""
    s = stats_settings(context)
    broken = context.get("broken") or {}
    lines = ["| " + " | ".join(table.columns) + " |", "|---|---|" + "---|" * (len(table.columns) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in table.astype(str).itertuples(index=False)]
    level = f"{100 * (1 - s['alpha']):g}%"
    legend = (
        f"\n[low, high]: {level} bootstrap percentile interval over the task's items "
        f"({s['bootstrap']} resamples; ± stderr, lm-eval's, where there are no per-item results). "
        "▲ better than every parent, ● between its parents (better than one, worse than another), "
        "▼ worse than every parent: paired comparisons on the same items (primary metric, "
        f"respecting lower-is-better), significant at alpha {s['alpha']:g} after the "
        f"{_CORRECTIONS[s['correction']]} across the campaign's {_count(comparisons)} harness comparisons; "
        "no mark: not shown by the data. "
        "Each comparison (n, test, interval, p-values) is in results/tables/merge_comparisons.csv; – missing.\n"
    )
    if "Holmes mean F1" in table.columns:
        legend += (
            "\nHolmes mean F1: the mean macro-F1 over the probing datasets (each the mean over its seeds), "
            f"[low, high] its {level} bootstrap interval over the datasets; its mark compares the merge with "
            "its parents on the same datasets (Wilcoxon signed-rank, the Holmes comparisons adjusted as a "
            "family of their own). Holmes winning rate: the model's rank among the campaign's models per "
            "dataset, scaled to 0-100 and averaged over the datasets (Holmes' measure), without an interval.\n"
        )
    if broken:
        legend += "\nBroken (sanity check, results/checks/):\n\n" + "".join(
            f"- {m}: {'; '.join(reasons)}\n" for m, reasons in broken.items()
        )
    return "# Leaderboard\n\n" + "\n".join(lines) + "\n" + legend


_CORRECTIONS = {
    "holm": "Holm correction",
    "bh": "Benjamini-Hochberg correction",
    "none": "no correction for multiple comparisons",
}


def is_holmes(comparisons):
    """The rows of merge_comparisons that compare Holmes competences (task "holmes: ...")."""
    return comparisons["task"].astype(str).str.startswith("holmes: ")


def _count(comparisons) -> int:
    """The harness comparisons the correction runs across (the leaderboard's family: the
    configured tasks, groups by their own value)."""
    if comparisons is None or comparisons.empty:
        return 0
    headline = ~is_holmes(comparisons) & (comparisons["task"] == comparisons["harness_task"])
    return int(comparisons.loc[headline, "p_value"].notna().sum())


def _versus_parents_of(comparisons, model: str, harness_task: str) -> str:
    """The merge against all its parents on a configured task (its primary metric)."""
    if comparisons is None or comparisons.empty:
        return ""
    sel = comparisons[
        (comparisons["model"] == model)
        & (comparisons["harness_task"] == harness_task)
        & (comparisons["task"] == harness_task)
    ]
    return str(sel["versus_parents"].iloc[0]) if len(sel) else ""


def _fmt(value, stderr=math.nan, ci=None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = _num(value)
    if ci is not None and not any(math.isnan(c) for c in ci):
        text += f" [{_num(ci[0])}, {_num(ci[1])}]"
    elif stderr is not None and isinstance(stderr, float) and not math.isnan(stderr):
        text += f" ± {stderr:.3f}"
    return text


def _num(value) -> str:
    return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3f}"
