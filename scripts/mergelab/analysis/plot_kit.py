"""What every figure shares: the paper theme, colours by role (base, parent, merge), horizontal
bars per model with the band between a merge's parents, and the files a figure is written as
(PNG + SVG, the plotted data as CSV beside), or a note where there is nothing to plot.

Light at import (mergelab.analysis.plots, which the DAG build imports, imports it): matplotlib, seaborn
and pandas load only when drawing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

from mergelab.plan.jobs import Catalogue

ROLE_COLORS = {"base": "#6b6b6b", "parent": "#2b6cb0", "merge": "#dd6b20"}
WIDTH = 7.0


def paper_style():
    """matplotlib (Agg) and seaborn, themed for a paper: (pyplot, seaborn)."""
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

    plt, _ = paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH, 1.4))
    ax.axis("off")
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=11, weight="bold")
    ax.text(0.5, 0.28, text, ha="center", va="center", fontsize=9, wrap=True)
    save(fig, pd.DataFrame({"note": [text]}), stem)


def model_order(catalogue: Catalogue, models) -> List[str]:
    """Parents and bases first, then merges grouped by recipe, as in the config."""
    present = set(models)
    order = catalogue.model_order
    parents = [m for m in order if catalogue.models[m].get("role") != "merge" and m in present]
    merges = [m for m in order if catalogue.models[m].get("role") == "merge" and m in present]
    recipes = list(dict.fromkeys(catalogue.models[m].get("recipe") for m in merges))
    return parents + [m for r in recipes for m in merges if catalogue.models[m].get("recipe") == r]


def bars(
    ax,
    data,
    catalogue: Catalogue,
    value: str = "value",
    err: Optional[str] = "stderr",
    higher_is_better: bool = True,
) -> None:
    """Horizontal bars, one per model, coloured by role; per recipe, the band between its parents."""
    order = model_order(catalogue, data["model"])
    d = data.set_index("model").loc[order].reset_index()
    y = list(range(len(d)))
    colors = [ROLE_COLORS.get(catalogue.models.get(m, {}).get("role"), "#999999") for m in d["model"]]
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
        catalogue.models[m].get("recipe") for m in d["model"] if catalogue.models.get(m, {}).get("role") == "merge"
    ):
        rows = [
            i
            for i, m in enumerate(d["model"])
            if catalogue.models[m].get("recipe") == recipe and catalogue.models[m].get("role") == "merge"
        ]
        parents = catalogue.models[d["model"][rows[0]]].get("parents", [])
        pv = [values[p] for p in parents if p in values.index and not math.isnan(values[p])]
        if rows and pv:  # on top of the bars, so it shows where they end inside or outside it
            span = [min(rows) - 0.45, max(rows) + 0.45]
            ax.fill_betweenx(span, min(pv), max(pv), color="#2b6cb0", alpha=0.18, lw=0, zorder=3)
            for edge in (min(pv), max(pv)):
                ax.plot([edge, edge], span, color="#2b6cb0", lw=0.8, ls="--", zorder=3)
    from matplotlib.patches import Patch

    roles = {catalogue.models.get(m, {}).get("role") for m in d["model"]}
    handles = [Patch(color=c, label=r) for r, c in ROLE_COLORS.items() if r in roles]
    handles.append(Patch(color="#2b6cb0", alpha=0.18, label="between the parents"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_xlim(right=ax.get_xlim()[1] * 1.08)
    ax.set_xlabel(ax.get_xlabel() + ("" if higher_is_better else "  (lower is better)"))


def figure_height(n: int) -> float:
    """The height (inches) of a figure of ``n`` bars."""
    return max(2.2, 0.6 + 0.2 * n)
