"""The figure of a merge search (results/search/<name>/trials.csv): how its trials scored."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

from mergelab.analysis.plot_kit import WIDTH, note, paper_style, save


def search(trials, spec: Dict[str, Any], best: List[int], stem: Path) -> None:
    """A merge search (results/search/<name>/trials.csv): each objective against the trial number
    with the running best, the Pareto front of the first two objectives (several objectives),
    and one slice per sampled parameter (the first objective against its value, by method)."""
    plt, sns = paper_style()
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
