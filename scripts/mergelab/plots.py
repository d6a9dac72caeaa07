"""The campaign's figures, drawn from the tidy tables (PNG + SVG, the plotted data as CSV beside).

Every figure is sized for a paper (7 inches wide, about 0.22 inches per bar), colours
models by role (base, parent, merge), and where merges are compared with their parents
shades the band between the parents' values. A figure that has too little data to say
anything still gets written, as a short note, so the report says why it is empty.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

ROLE_COLORS = {"base": "#6b6b6b", "parent": "#2b6cb0", "merge": "#dd6b20"}
WIDTH = 7.0


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.05)
    plt.rcParams.update({"svg.fonttype": "none", "figure.dpi": 100, "savefig.dpi": 200})
    return plt, sns


def save(fig, data, stem: Path) -> None:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), bbox_inches="tight")
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
    data.to_csv(stem.with_suffix(".csv"), index=False)
    import matplotlib.pyplot as plt

    plt.close(fig)


def note(stem: Path, title: str, text: str) -> None:
    """A figure that only says why there is nothing to plot."""
    import pandas as pd

    plt, _ = _mpl()
    fig, ax = plt.subplots(figsize=(WIDTH, 1.4))
    ax.axis("off")
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=11, weight="bold")
    ax.text(0.5, 0.28, text, ha="center", va="center", fontsize=9, wrap=True)
    save(fig, pd.DataFrame({"note": [text]}), stem)


def model_order(context: Dict[str, Any], models) -> List[str]:
    """Parents and bases first, then merges grouped by recipe, as in the config."""
    present = set(models)
    order = context.get("model_order") or list(context["models"])
    parents = [m for m in order if context["models"][m].get("role") != "merge" and m in present]
    merges = [m for m in order if context["models"][m].get("role") == "merge" and m in present]
    recipes = list(dict.fromkeys(context["models"][m].get("recipe") for m in merges))
    return parents + [m for r in recipes for m in merges if context["models"][m].get("recipe") == r]


def bars(
    ax,
    data,
    context: Dict[str, Any],
    value: str = "value",
    err: Optional[str] = "stderr",
    higher_is_better: bool = True,
) -> None:
    """Horizontal bars, one per model, coloured by role; per recipe, the band between its parents."""
    order = model_order(context, data["model"])
    d = data.set_index("model").loc[order].reset_index()
    y = list(range(len(d)))
    colors = [ROLE_COLORS.get(context["models"].get(m, {}).get("role"), "#999999") for m in d["model"]]
    ax.barh(y, d[value].fillna(0), color=colors, height=0.72)
    if err and err in d and d[err].notna().any():
        ok = d[err].notna() & d[value].notna()
        ax.errorbar(
            d[value][ok],
            [yi for yi, k in zip(y, ok) if k],
            xerr=d[err][ok],
            fmt="none",
            ecolor="#333333",
            capsize=2,
            lw=0.8,
        )
    top = float(d[value].abs().max()) if d[value].notna().any() else 1.0
    for yi, v, e in zip(y, d[value], d[err] if err and err in d else [math.nan] * len(d)):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            ax.text(0, yi, "  missing", va="center", ha="left", fontsize=7, color="#b00000")
        else:  # the value at the end of its bar (and error bar): differences stay readable
            end = v + (e if isinstance(e, float) and not math.isnan(e) else 0)
            ax.text(end + 0.01 * top, yi, f"{v:.4g}", va="center", ha="left", fontsize=6, color="#333333")
    ax.set_yticks(y, d["model"], fontsize=7)
    ax.invert_yaxis()
    ax.set_ylabel("")
    values = d.set_index("model")[value]
    for recipe in dict.fromkeys(
        context["models"][m].get("recipe") for m in d["model"] if context["models"].get(m, {}).get("role") == "merge"
    ):
        rows = [
            i
            for i, m in enumerate(d["model"])
            if context["models"][m].get("recipe") == recipe and context["models"][m].get("role") == "merge"
        ]
        parents = context["models"][d["model"][rows[0]]].get("parents", [])
        pv = [values[p] for p in parents if p in values.index and not math.isnan(values[p])]
        if rows and pv:  # on top of the bars, so it shows where they end inside or outside it
            span = [min(rows) - 0.45, max(rows) + 0.45]
            ax.fill_betweenx(span, min(pv), max(pv), color="#2b6cb0", alpha=0.18, lw=0, zorder=3)
            for edge in (min(pv), max(pv)):
                ax.plot([edge, edge], span, color="#2b6cb0", lw=0.8, ls="--", zorder=3)
    from matplotlib.patches import Patch

    roles = {context["models"].get(m, {}).get("role") for m in d["model"]}
    handles = [Patch(color=c, label=r) for r, c in ROLE_COLORS.items() if r in roles]
    handles.append(Patch(color="#2b6cb0", alpha=0.18, label="between the parents"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_xlim(right=ax.get_xlim()[1] * 1.08)
    ax.set_xlabel(ax.get_xlabel() + ("" if higher_is_better else "  (lower is better)"))


def _height(n: int) -> float:
    return max(2.2, 0.6 + 0.2 * n)


# --------------------------------------------------------------------------- figures


def harness_task(harness, context: Dict[str, Any], task: str, stem: Path) -> None:
    from mergelab.organize import headline

    head = headline(harness)
    d = head[head["harness_task"] == task].copy()
    if d.empty:
        return note(stem, task, "no result for this task")
    if d["value"].notna().sum() == 0:
        return note(stem, task, "every result of this task is missing")
    plt, _ = _mpl()
    metric, filt = d["metric"].dropna().iloc[0], d["filter"].dropna().iloc[0]
    hib = bool(d["higher_is_better"].dropna().iloc[0]) if d["higher_is_better"].notna().any() else True
    fig, ax = plt.subplots(figsize=(WIDTH, _height(len(d))))
    ax.set_xlabel(f"{metric}" + ("" if filt in ("none", "") else f" ({filt})"))
    bars(ax, d, context, higher_is_better=hib)
    ax.set_title(f"{task}: {metric} per model, ± stderr", fontsize=10)
    d["role"] = [context["models"].get(m, {}).get("role", "") for m in d["model"]]
    save(fig, d[["model", "role", "harness_task", "metric", "filter", "value", "stderr"]], stem)


def holmes_competences(comp, context: Dict[str, Any], stem: Path) -> None:
    d = comp[comp["competence"] != "overall"]
    if d.empty or d["mean_f1"].notna().sum() == 0:
        return note(stem, "Holmes competences", "no Holmes scores")
    plt, _ = _mpl()
    comps = [c for c in sorted(d["competence"].unique()) if d[d["competence"] == c]["mean_f1"].notna().any()]
    cols = min(3, len(comps))
    rows = math.ceil(len(comps) / cols)
    n_models = d["model"].nunique()
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, rows * _height(n_models) * 0.9), sharey=True, squeeze=False)
    for ax, c in zip(axes.flat, comps):
        sel = d[d["competence"] == c].rename(columns={"mean_f1": "value"})
        ax.set_xlabel("mean macro-F1")
        bars(ax, sel, context, err=None)
        n = int(sel["n_f1"].max())
        ax.set_title(f"{c} ({n} dataset{'s' if n != 1 else ''})", fontsize=9)
        ax.get_legend().remove()
    for ax in list(axes.flat)[len(comps) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    from matplotlib.patches import Patch

    roles = {context["models"].get(m, {}).get("role") for m in d["model"]}
    handles = [Patch(color=c, label=r) for r, c in ROLE_COLORS.items() if r in roles]
    handles.append(Patch(color="#2b6cb0", alpha=0.18, label="between the parents"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("Holmes: mean score per competence (F1 datasets; Pearson datasets in the table)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save(fig, d[["model", "role", "competence", "mean_f1", "n_f1", "mean_pearson", "n_pearson", "winning_rate"]], stem)


def kendall(harness, holmes, comp, stem: Path, level: str = "competence") -> None:
    """Heatmap of organize.kendall_table: τ and p-value per (Holmes row, harness task)."""
    from mergelab.compare import kendall_table

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
    plt, sns = _mpl()
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
    plt, _ = _mpl()
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
    plt, _ = _mpl()
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
    plt, sns = _mpl()
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


def sweep(harness, comp, context: Dict[str, Any], recipe: str, param: str, stem: Path) -> None:
    """Score against the swept parameter, one line per method; the parents as dashed lines."""
    import pandas as pd

    from mergelab.organize import headline

    measures: Dict[str, Any] = {}
    if harness is not None and not harness.empty:
        head = headline(harness)
        for t in dict.fromkeys(head["harness_task"]):
            measures[t] = head[head["harness_task"] == t].set_index("model")["value"]
    if comp is not None and not comp.empty:
        measures["Holmes winning rate"] = comp[comp["competence"] == "overall"].set_index("model")["winning_rate"]
    rows = []
    for mid, info in context["models"].items():
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
    plt, sns = _mpl()
    ms = list(dict.fromkeys(data["measure"]))
    cols = min(3, len(ms))
    nrows = math.ceil(len(ms) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(WIDTH, 2.3 * nrows), squeeze=False)
    parents = next(i for i in context["models"].values() if i.get("recipe") == recipe).get("parents", [])
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


def search(trials, spec: Dict[str, Any], best: List[int], stem: Path) -> None:
    """A merge search (results/search/<name>/trials.csv): each objective against the trial number
    with the running best, the Pareto front of the first two objectives (several objectives),
    and one slice per sampled parameter (the first objective against its value, by method)."""
    import math

    plt, sns = _mpl()
    objectives = [o["name"] for o in spec["objectives"]]
    dims = list(dict.fromkeys(d["name"] for ds in spec["dimensions"].values() for d in ds))
    done = trials[trials["state"] == "complete"]
    if done.empty:
        note(stem, f"search {spec['name']}", "no trial has a score yet (see trials.csv: state, reason)")
        return
    top = 2 if len(objectives) > 1 else 1
    ncols = 3
    nslice = math.ceil(len(dims) / ncols)
    fig = plt.figure(figsize=(WIDTH * 1.3, 3.0 * (1 + nslice)))
    grid = fig.add_gridspec(1 + nslice, ncols)
    ax = fig.add_subplot(grid[0, : (ncols if top == 1 else 2)])
    for i, name in enumerate(objectives):
        color = sns.color_palette()[i]
        ax.scatter(done["trial"], done[name], color=color, s=22, label=name)
        if top == 1:
            ax.plot(done["trial"], done[name].cummax(), color=color, drawstyle="steps-post", label="best so far")
    for t in trials.loc[trials["state"] != "complete", "trial"]:
        ax.axvline(t, color="#c53030", alpha=0.3, lw=1)
    ax.scatter(
        trials.loc[trials["trial"].isin(best), "trial"],
        done.set_index("trial").reindex(best)[objectives[0]],
        facecolors="none",
        edgecolors="black",
        s=80,
        label="best" if top == 1 else "Pareto set",
    )
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("objective (maximised)")
    ax.set_title(f"search {spec['name']}: {spec['sampler']}, {spec['parallel']} trials per generation")
    ax.legend(fontsize=7)
    if top == 2:
        ax2 = fig.add_subplot(grid[0, 2])
        a, b = objectives[:2]
        ax2.scatter(done[a], done[b], color="#a0aec0", s=18)
        front = done[done["trial"].isin(best)].sort_values(a)
        ax2.plot(front[a], front[b], "o-", color="#dd6b20", ms=5, label="Pareto set")
        ax2.set_xlabel(a)
        ax2.set_ylabel(b)
        ax2.legend(fontsize=7)
    for i, d in enumerate(dims):
        axs = fig.add_subplot(grid[1 + i // ncols, i % ncols])
        sub = done[done[d].notna()] if d in done else done.iloc[0:0]
        for j, (method, g) in enumerate(sub.groupby("method")):
            axs.scatter(g[d], g[objectives[0]], s=18, color=sns.color_palette()[j + 2], label=method)
        axs.set_xlabel(d)
        axs.set_ylabel(objectives[0] if i % ncols == 0 else "")
        if i == 0 and sub["method"].nunique() > 1:
            axs.legend(fontsize=7)
    fig.tight_layout()
    save(fig, trials, stem)


def _sort_key(label: str):
    """Numbers first, in order, then per-model mappings (as JSON) in text order."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)
