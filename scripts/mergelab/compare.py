"""How the models compare: each merge against its parents, the rankings by Holmes and by the
harness against each other (Kendall's τ), and the leaderboard.

Pure functions of the tidy tables (mergelab.organize) and the campaign's catalogue.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

from mergelab.organize import headline


def outcome(value: float, parents: List[float], higher_is_better: bool) -> str:
    """better / between / worse than the parents (ties count as between); '' if unknown."""
    parents = [p for p in parents if not math.isnan(p)]
    if math.isnan(value) or not parents:
        return ""
    if not higher_is_better:
        value, parents = -value, [-p for p in parents]
    if value > max(parents):
        return "better"
    if value < min(parents):
        return "worse"
    return "between"


def merge_comparisons(harness, competences, context: Dict[str, Any]):
    """Per merge and measure (a harness task's primary metric, a competence's mean F1):
    the merge's value, its parents' best and worst, difference to the best parent, outcome."""
    import pandas as pd

    measures: Dict[str, Dict[str, tuple]] = {}  # measure -> model -> (value, higher_is_better)
    if harness is not None and not harness.empty:
        for r in headline(harness).itertuples():
            measures.setdefault(f"task: {r.harness_task}", {})[r.model] = (r.value, bool(r.higher_is_better))
    if competences is not None and not competences.empty:
        for r in competences.itertuples():
            if r.competence != "overall" and r.n_f1:
                measures.setdefault(f"holmes: {r.competence}", {})[r.model] = (r.mean_f1, True)
    rows = []
    for mid, info in context["models"].items():
        if info.get("role") != "merge":
            continue
        for measure, values in measures.items():
            if mid not in values:
                continue
            value, hib = values[mid]
            parents = [values[p][0] for p in info.get("parents", []) if p in values]
            known = [p for p in parents if not math.isnan(p)]
            best = (max(known) if hib else min(known)) if known else math.nan
            rows.append(
                {
                    "model": mid,
                    "recipe": info.get("recipe"),
                    "method": info.get("method"),
                    "measure": measure,
                    "value": value,
                    "best_parent": best,
                    "worst_parent": (min(known) if hib else max(known)) if known else math.nan,
                    "minus_best_parent": (value - best) if hib else (best - value),
                    "higher_is_better": hib,
                    "outcome": outcome(value, parents, hib),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "recipe",
            "method",
            "measure",
            "value",
            "best_parent",
            "worst_parent",
            "minus_best_parent",
            "higher_is_better",
            "outcome",
        ],
    )


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


def leaderboard(harness, competences, comparisons, context: Dict[str, Any]) -> str:
    """Markdown: models x headline numbers; merges marked against their parents."""
    marks = {"better": " ▲", "between": " ●", "worse": " ▼", "": ""}
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
            outcome_ = _outcome_of(comparisons, r.model, f"task: {r.harness_task}")
            text = "broken" if r.status == "broken" and math.isnan(r.value) else _fmt(r.value, r.stderr)
            values.setdefault(r.model, {})[col] = text + marks[outcome_]
    if competences is not None and not competences.empty:
        for r in competences.itertuples():
            if r.competence == "overall":
                for col, v in (("Holmes winning rate", r.winning_rate), ("Holmes mean F1", r.mean_f1)):
                    if col not in cols:
                        cols.append(col)
                    values.setdefault(r.model, {})[col] = _fmt(v)
    models = context.get("model_order") or list(context["models"])
    broken = context.get("broken") or {}
    lines = ["| model | role | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for m in models:
        if m not in values:
            continue
        role = context["models"][m].get("role", "") + (" (broken)" if m in broken else "")
        lines.append(f"| {m} | {role} | " + " | ".join(values[m].get(c, "–") for c in cols) + " |")
    legend = (
        "\n▲ better than every parent, ● between its parents, ▼ worse than every parent "
        "(on the primary metric, respecting lower-is-better); – missing.\n"
    )
    if broken:
        legend += "\nBroken (sanity check, results/checks/):\n\n" + "".join(
            f"- {m}: {'; '.join(reasons)}\n" for m, reasons in broken.items()
        )
    return "# Leaderboard\n\n" + "\n".join(lines) + "\n" + legend


def _outcome_of(comparisons, model: str, measure: str) -> str:
    if comparisons is None or comparisons.empty:
        return ""
    sel = comparisons[(comparisons["model"] == model) & (comparisons["measure"] == measure)]
    return str(sel["outcome"].iloc[0]) if len(sel) else ""


def _fmt(value, stderr=math.nan) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.4g}" if abs(value) >= 100 else f"{value:.3f}"
    if stderr is not None and isinstance(stderr, float) and not math.isnan(stderr):
        text += f" ± {stderr:.3f}"
    return text
