"""The leaderboard: models x headline numbers with their intervals, a merge marked against its
parents where the paired comparisons (mergelab.analysis.compare) show it; results/tables/leaderboard.csv
and leaderboard.md, with what its numbers and marks mean.
"""

from __future__ import annotations

import math
from typing import Dict, List

from mergelab.analysis.compare import holmes_intervals, is_holmes, stats_settings
from mergelab.analysis.harness_rows import headline
from mergelab.plan.jobs import Catalogue

MARKS = {"better than all": " ▲", "between": " ●", "worse than all": " ▼"}

HOLMES_OVERALL = "holmes: overall"


def leaderboard_table(harness, competences, comparisons, catalogue: Catalogue, holmes=None):
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
        intervals = holmes_intervals(holmes, catalogue)
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
    models = catalogue.model_order
    broken = catalogue.broken
    rows = []
    for m in models:
        if m in values:
            role = catalogue.models[m].get("role", "") + (" (broken)" if m in broken else "")
            rows.append([m, role] + [values[m].get(c, "–") for c in cols])
    return pd.DataFrame(rows, columns=["model", "role"] + cols)


def leaderboard(table, comparisons, catalogue: Catalogue) -> str:
    """Markdown: the leaderboard ``table`` (leaderboard_table) and what its numbers and marks mean."""
    s = stats_settings(catalogue)
    broken = catalogue.broken
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
