"""The campaign's figures, drawn from the tidy tables (PNG + SVG, the plotted data as CSV beside):
what mergelab.analysis.outputs.DRAW draws (the figures of mergelab.plan.figures.FIGURES).

Every figure is sized for a paper (7 inches wide, about 0.22 inches per bar), colours
models by role (base, parent, merge), and where merges are compared with their parents
shades the band between the parents' values (mergelab.analysis.plot_kit). A figure that has too
little data to say anything still gets written, as a short note, so the report says why
it is empty. A merge search's figure is mergelab.analysis.search_plot.

Light at import (the DAG build imports it, through mergelab.analysis.outputs): matplotlib, seaborn
and pandas load only when drawing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict

from mergelab.analysis.harness_rows import headline
from mergelab.analysis.kendall import kendall_table
from mergelab.analysis.plot_kit import ROLE_COLORS, WIDTH, bars, figure_height, note, paper_style, save
from mergelab.plan.jobs import Catalogue


def harness_task(harness, catalogue: Catalogue, task: str, stem: Path) -> None:
    head = headline(harness)
    d = head[head["harness_task"] == task].copy()
    if d.empty:
        return note(stem, task, "no result for this task")
    if d["value"].notna().sum() == 0:
        return note(stem, task, "every result of this task is missing")
    plt, _ = paper_style()
    metric, filt = d["metric"].dropna().iloc[0], d["filter"].dropna().iloc[0]
    hib = bool(d["higher_is_better"].dropna().iloc[0]) if d["higher_is_better"].notna().any() else True
    fig, ax = plt.subplots(figsize=(WIDTH, figure_height(len(d))))
    ax.set_xlabel(f"{metric}" + ("" if filt in ("none", "") else f" ({filt})"))
    bars(ax, d, catalogue, higher_is_better=hib)
    ax.set_title(f"{task}: {metric} per model, ± stderr", fontsize=10)
    d["role"] = [catalogue.models.get(m, {}).get("role", "") for m in d["model"]]
    save(fig, d[["model", "role", "harness_task", "metric", "filter", "value", "stderr"]], stem)


def holmes_competences(comp, catalogue: Catalogue, stem: Path) -> None:
    d = comp[comp["competence"] != "overall"]
    if d.empty or d["mean_f1"].notna().sum() == 0:
        return note(stem, "Holmes competences", "no Holmes scores")
    plt, _ = paper_style()
    comps = [c for c in sorted(d["competence"].unique()) if d[d["competence"] == c]["mean_f1"].notna().any()]
    cols = min(3, len(comps))
    rows = math.ceil(len(comps) / cols)
    n_models = d["model"].nunique()
    fig, axes = plt.subplots(
        rows, cols, figsize=(WIDTH, rows * figure_height(n_models) * 0.9), sharey=True, squeeze=False
    )
    for ax, c in zip(axes.flat, comps):
        sel = d[d["competence"] == c].rename(columns={"mean_f1": "value"})
        ax.set_xlabel("mean macro-F1")
        bars(ax, sel, catalogue, err=None)
        n = int(sel["n_f1"].max())
        ax.set_title(f"{c} ({n} dataset{'s' if n != 1 else ''})", fontsize=9)
        ax.get_legend().remove()
    for ax in list(axes.flat)[len(comps) :]:
        ax.axis("off")
    from matplotlib.patches import Patch

    roles = {catalogue.models.get(m, {}).get("role") for m in d["model"]}
    handles = [Patch(color=c, label=r) for r, c in ROLE_COLORS.items() if r in roles]
    handles.append(Patch(color="#2b6cb0", alpha=0.18, label="between the parents"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("Holmes: mean score per competence (F1 datasets; Pearson datasets in the table)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save(fig, d[["model", "role", "competence", "mean_f1", "n_f1", "mean_pearson", "n_pearson", "winning_rate"]], stem)


def kendall(harness, holmes, comp, stem: Path, level: str = "competence") -> None:
    """Heatmap of kendall.kendall_table: τ and p-value per (Holmes row, harness task)."""
    data = kendall_table(harness, holmes, comp, level)
    rows = list(dict.fromkeys(data["holmes"]))
    tasks = list(dict.fromkeys(data["harness_task"]))
    title = (
        f"Kendall τ: Holmes {'winning rate per competence' if level == 'competence' else 'score per dataset'}"
        " vs harness tasks"
    )
    if data.empty or data["n"].max() < 3:
        note(
            stem, title, f"needs at least 3 models evaluated by both (have {int(data['n'].max()) if len(data) else 0})"
        )
        return
    plt, sns = paper_style()
    tau = data.pivot(index="holmes", columns="harness_task", values="tau").loc[list(rows), tasks]
    pv = data.pivot(index="holmes", columns="harness_task", values="p_value").loc[list(rows), tasks]
    nn = data.pivot(index="holmes", columns="harness_task", values="n").loc[list(rows), tasks]
    labels = tau.copy().astype(object)
    for i in tau.index:
        for j in tau.columns:
            if nn.loc[i, j] < 3:
                labels.loc[i, j] = f"n={int(nn.loc[i, j])}"
            elif math.isnan(tau.loc[i, j]):
                labels.loc[i, j] = "no\nvariation"  # one of the two rankings is all ties
            else:
                labels.loc[i, j] = f"{tau.loc[i, j]:.2f}\np={pv.loc[i, j]:.2g}"
    fig, ax = plt.subplots(figsize=(min(WIDTH, 1.6 + 1.1 * len(tasks)), max(2.0, 0.9 + 0.42 * len(tau))))
    ax.set_facecolor("#eeeeee")
    ax.grid(False)
    sns.heatmap(tau.astype(float), vmin=-1, vmax=1, cmap="RdBu_r", center=0, ax=ax, cbar_kws={"label": "Kendall τ"})
    for yi, i in enumerate(tau.index):
        for xi, j in enumerate(tau.columns):
            ax.text(
                xi + 0.5,
                yi + 0.5,
                labels.loc[i, j],
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(tau.loc[i, j]) > 0.6 else "#222222",
            )
    lo, hi = int(nn.min().min()), int(nn.max().max())
    n_text = f"n = {hi} models" if lo == hi else f"n = {lo}–{hi} models"
    ax.set_title(f"{title}\n({n_text}; p: two-sided, scipy kendalltau)", fontsize=9)
    ax.set_xlabel("harness task (primary metric, oriented higher = better)")
    ax.set_ylabel("")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    save(fig, data, stem)


VERDICT_COLORS = {"better": "#2f855a", "worse": "#c53030", "indistinguishable": "#718096"}


def best_parent_rows(comparisons):
    """Each merge's comparison with its best parent on each configured task (the parent with the
    best value, respecting lower-is-better), as in results/tables/merge_comparisons.csv."""
    if comparisons is None or comparisons.empty:
        return comparisons
    sel = comparisons[(comparisons["relation"] == "parent") & (comparisons["task"] == comparisons["harness_task"])]
    sel = sel[sel["parent_value"].notna()]
    oriented = sel["parent_value"].where(sel["higher_is_better"].astype(bool), -sel["parent_value"])
    best = oriented.groupby([sel["model"], sel["harness_task"]], sort=False).idxmax()
    return sel.loc[best.to_numpy()]


def merge_vs_parents(comparisons, stem: Path) -> None:
    """Forest plot: per configured task, each merge minus its best parent with the paired bootstrap
    interval, coloured by the verdict (after the correction)."""
    rows = best_parent_rows(comparisons)
    if rows is None or rows.empty:
        return note(stem, "Merges vs their best parent", "no merge with evaluated parents and per-item results")
    plt, _ = paper_style()
    from matplotlib.ticker import MaxNLocator

    tasks = list(dict.fromkeys(rows["harness_task"]))
    merges = list(dict.fromkeys(rows["model"]))
    cols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(WIDTH, nrows * max(1.6, 0.8 + 0.22 * len(merges))), sharey=True, squeeze=False
    )
    for ax, task in zip(axes.flat, tasks):
        d = rows[rows["harness_task"] == task].set_index("model")
        for y, m in enumerate(merges):
            if m not in d.index:
                continue
            r = d.loc[m]
            color = VERDICT_COLORS.get(r["verdict"], "#999999")
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=color, lw=1.6)
            ax.plot([r["diff"]], [y], "o", color=color, ms=4)
        ax.axvline(0, color="#333333", lw=0.8, ls="--")
        first = d.iloc[0]
        lower = "" if bool(first["higher_is_better"]) else ", lower is better"
        ax.set_title(f"{task}\n({first['metric']}{lower})", fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_yticks(range(len(merges)), merges, fontsize=7)
        ax.set_ylim(len(merges) - 0.5, -0.5)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    alpha, correction = rows["alpha"].iloc[0], rows["correction"].iloc[0]
    handles = [Line2D([], [], color=c, marker="o", lw=1.6, label=v) for v, c in VERDICT_COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False, bbox_to_anchor=(0.5, -0.02))
    level = f"{100 * (1 - float(alpha)):g}%"
    fig.suptitle(
        f"Each merge minus its best parent, {level} paired bootstrap interval\n"
        f"(verdicts at alpha {float(alpha):g} after the {correction} correction)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save(fig, rows, stem)


OUTCOMES = ["better than all", "between", "worse than all", "undecided"]


def outcomes(comparisons, stem: Path) -> None:
    """Per configured task: how many merges the paired comparisons show better than all their
    parents, between them, worse than all, or leave undecided."""
    import pandas as pd

    sel = None
    if comparisons is not None and not comparisons.empty:
        sel = comparisons[(comparisons["relation"] == "parent") & (comparisons["task"] == comparisons["harness_task"])]
        # a partial build (a parent's results missing) reads blank verdicts back as NaN
        sel = sel.assign(versus_parents=sel["versus_parents"].fillna("")).drop_duplicates(["model", "harness_task"])
        sel = sel[sel["versus_parents"] != ""]
    if sel is None or sel.empty:
        return note(stem, "Merge outcomes", "no merge with evaluated parents")
    plt, _ = paper_style()
    counts = (
        sel.groupby(["harness_task", "versus_parents"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=OUTCOMES, fill_value=0)
    )
    fig, ax = plt.subplots(figsize=(WIDTH, max(1.8, 0.7 + 0.3 * len(counts))))
    counts.plot.barh(stacked=True, ax=ax, color=["#2f855a", "#a0aec0", "#c53030", "#e2e8f0"], width=0.7)
    ax.set_xlabel("merges")
    ax.set_ylabel("")
    alpha, correction = sel["alpha"].iloc[0], sel["correction"].iloc[0]
    ax.set_title(
        f"Merges against all their parents (paired tests, alpha {float(alpha):g}, {correction} correction)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.invert_yaxis()
    save(fig, counts.reset_index().rename_axis(None, axis=1).pipe(pd.DataFrame), stem)


def normalised_scores(normalised, stem: Path) -> None:
    """The normalised-score table as a heatmap: per merge (with a base) and task the gain retention
    (merge - base) / (best parent - base), the merge / best parent ratio in brackets, and the mean
    over its tasks."""
    if normalised is None or normalised.empty:
        return note(stem, "Normalised scores", "no merge with a base and evaluated parents")
    plt, sns = paper_style()
    order = list(dict.fromkeys(normalised["harness_task"]))
    gr = normalised.pivot(index="model", columns="harness_task", values="gain_retention")
    rel = normalised.pivot(index="model", columns="harness_task", values="relative_to_best")
    models = list(dict.fromkeys(normalised["model"]))
    gr, rel = gr.loc[models, order], rel.loc[models, order]
    labels = gr.copy().astype(object)
    for i in gr.index:
        for j in gr.columns:
            g, r = gr.loc[i, j], rel.loc[i, j]
            labels.loc[i, j] = ("–" if math.isnan(g) else f"{g:.2f}") + ("" if math.isnan(r) else f"\n({r:.2f})")
    fig, ax = plt.subplots(figsize=(min(WIDTH, 2.8 + 1.2 * len(order)), max(2.0, 0.9 + 0.36 * len(models))))
    ax.set_facecolor("#eeeeee")  # no gain to retain (the best parent ties the base): grey, its text below
    ax.grid(False)
    sns.heatmap(
        gr.astype(float).clip(-1, 2),
        annot=labels,
        fmt="",
        cmap="RdBu",
        center=0.5,
        vmin=-1,
        vmax=2,
        ax=ax,
        annot_kws={"fontsize": 6},
        cbar_kws={"label": "gain retention (clipped to [-1, 2])"},
    )
    for yi, i in enumerate(gr.index):
        for xi, j in enumerate(gr.columns):
            if math.isnan(gr.loc[i, j]):  # heatmap writes no text on a NaN cell
                ax.text(xi + 0.5, yi + 0.5, labels.loc[i, j], ha="center", va="center", fontsize=6)
    ax.set_title("Gain retention (merge − base) / (best parent − base); (merge / best parent)", fontsize=9)
    ax.set_xlabel("")
    ax.set_ylabel("")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.tick_params(axis="y", labelsize=7)
    save(fig, normalised, stem)


def sweep(harness, comp, catalogue: Catalogue, recipe: str, param: str, stem: Path) -> None:
    """Score against the swept parameter, one line per method; the parents as dashed lines."""
    import pandas as pd

    measures: Dict[str, Any] = {}
    if harness is not None and not harness.empty:
        head = headline(harness)
        for t in dict.fromkeys(head["harness_task"]):
            measures[t] = head[head["harness_task"] == t].set_index("model")["value"]
    if comp is not None and not comp.empty:
        measures["Holmes winning rate"] = comp[comp["competence"] == "overall"].set_index("model")["winning_rate"]
    rows = []
    for mid, info in catalogue.models.items():
        if info.get("recipe") != recipe or info.get("role") != "merge":
            continue
        x = (info.get("parameters") or {}).get(param)
        if x is None:
            continue  # a method of the recipe that does not take the swept parameter
        if isinstance(x, dict):
            x = json.dumps(x, sort_keys=True)
        for measure, series in measures.items():
            if mid in series.index:
                rows.append(
                    {
                        "recipe": recipe,
                        "parameter": param,
                        "x": x,
                        "method": info["method"],
                        "model": mid,
                        "measure": measure,
                        "value": series[mid],
                    }
                )
    data = pd.DataFrame(rows, columns=["recipe", "parameter", "x", "method", "model", "measure", "value"])
    if data.empty:
        return note(stem, f"{recipe}: sweep of {param}", "no evaluated merge of this sweep")
    plt, sns = paper_style()
    ms = list(dict.fromkeys(data["measure"]))
    cols = min(3, len(ms))
    nrows = math.ceil(len(ms) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(WIDTH, 2.3 * nrows), squeeze=False)
    parents = next(i for i in catalogue.models.values() if i.get("recipe") == recipe).get("parents", [])
    for ax, m in zip(axes.flat, ms):
        sel = data[data["measure"] == m]
        numeric = pd.to_numeric(sel["x"], errors="coerce").notna().all()
        # per-model values that differ between models ({"math": 0.2, "words": 1.5}): one position each
        labels = sorted(dict.fromkeys(map(str, sel["x"])), key=_sort_key) if not numeric else []
        where = pd.to_numeric(sel["x"]) if numeric else sel["x"].map(str).map({v: i for i, v in enumerate(labels)})
        sns.lineplot(
            data=sel.assign(x=where),
            x="x",
            y="value",
            hue="method",
            marker="o",
            ax=ax,
            legend=ax is axes.flat[0],
        )
        for p, style in zip(parents, ["--", ":", "-."]):
            if p in measures[m].index and not math.isnan(measures[m][p]):
                ax.axhline(measures[m][p], color=ROLE_COLORS["parent"], ls=style, lw=1, label=f"parent {p}")
        if labels:
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=6)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel(param)
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(ms) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if axes.flat[0].get_legend():
        axes.flat[0].get_legend().remove()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(5, len(labels)),
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.suptitle(f"{recipe}: score against {param}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save(fig, data, stem)


def _sort_key(label: str):
    """Numbers first, in order, then per-model mappings (as JSON) in text order."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)
