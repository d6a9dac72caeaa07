"""Do Holmes and the harness rank the models alike? Kendall's τ between their rankings.

Light at import (mergelab.analysis.plots, which the DAG build imports, imports it): pandas and scipy
load only when the table is built.
"""

from __future__ import annotations

import math

from mergelab.analysis.harness_rows import headline


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
