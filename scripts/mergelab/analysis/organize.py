"""Tidy tables from the tools' native outputs: one long table per benchmark, and provenance.

An lm-eval results dict's rows and the primary metric of a task are mergelab.analysis.harness_rows; how
the models compare (merges against parents) is mergelab.analysis.compare.

Pure functions of the result files and a *catalogue* (what the config says about
every model: role, recipe, method, parameters, parents). A result that is
missing or could not be computed is NaN with status "missing" (and named in the
log) - never a zero.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import mergelab
from mergelab.analysis.harness_rows import HARNESS_COLUMNS, harness_rows, model_columns
from mergelab.analysis.stats import DEFAULTS, t_interval
from mergelab.evaluate.completeness import partial_result
from mergelab.plan.holmes_sets import UNKNOWN
from mergelab.plan.jobs import Catalogue

log = logging.getLogger("mergelab.organize")

HOLMES_COLUMNS = [
    "model",
    "role",
    "recipe",
    "method",
    "parameters",
    "probing_dataset",
    "competence",
    "phenomenon",
    "probe_task_type",
    "metric",
    "mean",
    "sd",
    "ci_low",
    "ci_high",
    "n_seeds",
    "objective",
    "encoding",
    "status",
]
COMPETENCE_COLUMNS = [
    "model",
    "role",
    "recipe",
    "method",
    "competence",
    "mean_f1",
    "n_f1",
    "mean_pearson",
    "n_pearson",
    "winning_rate",
    "n_ranked",
]


# --------------------------------------------------------------------------- harness


def _valueless_row(model: str, harness_task: str, catalogue: Catalogue, status: str) -> Dict[str, Any]:
    """One row for a task with no value: its result file is missing, or the model was not evaluated."""
    return {
        **model_columns(model, catalogue),
        "harness_task": harness_task,
        "task": harness_task,
        "group": "",
        "is_group": False,
        "metric": "",
        "filter": "",
        "value": math.nan,
        "stderr": math.nan,
        "primary": True,
        "status": status,
    }


def harness_table(files: Dict[str, Dict[str, str]], catalogue: Catalogue):
    """files: model -> harness task -> JSON path. Missing files become one 'missing' row each."""
    import pandas as pd

    rows: List[Dict] = []
    for model, tasks in files.items():
        for harness_task, path in tasks.items():
            if not Path(path).is_file():
                log.warning("missing harness result: %s on %s (%s)", model, harness_task, path)
                rows.append(_valueless_row(model, harness_task, catalogue, "missing"))
                continue
            with open(path, encoding="utf-8") as fh:
                res = json.load(fh)
            if (res.get("mergelab") or {}).get("skipped"):  # a broken merge, not evaluated (sanity.on_fail)
                rows.append(_valueless_row(model, harness_task, catalogue, "broken"))
                continue
            problem = partial_result(res)
            if problem:  # fewer documents than the task and limit ask: never a full result
                log.warning("rejected %s (%s on %s): %s", path, model, harness_task, problem)
                rows.append(_valueless_row(model, harness_task, catalogue, "partial"))
                continue
            found = harness_rows(res, model, harness_task, catalogue)
            for r in found:
                if r["status"] == "missing":
                    log.warning("no value for %s %s,%s of %s", r["task"], r["metric"], r["filter"], model)
            rows.extend(found)
    return pd.DataFrame(rows, columns=HARNESS_COLUMNS)


def add_intervals(harness, intervals) -> None:
    """ci_low, ci_high of the rows of ``intervals`` (mergelab.analysis.compare.model_intervals: a model's
    primary metric of a task, from its per-item results); NaN elsewhere."""
    key = ["model", "harness_task", "task", "metric", "filter"]
    if harness.empty or intervals.empty:
        return
    found = harness[key].merge(intervals[key + ["ci_low", "ci_high"]], on=key, how="left")
    harness["ci_low"] = found["ci_low"].to_numpy(float)
    harness["ci_high"] = found["ci_high"].to_numpy(float)


# --------------------------------------------------------------------------- holmes


def holmes_table(
    files: Dict[str, str],
    datasets: List[Dict[str, str]],
    catalogue: Catalogue,
    mapping: Optional[Dict[str, Dict[str, str]]] = None,
):
    """Per (model, dataset): mean and sd over seeds, and the mean's t-interval over the seeds at
    the campaign's stats.alpha (NaN with one seed). datasets: the manifest's rows, whose competence
    and phenomenon come from workflow/holmes/probes.csv; for a dataset it does not know, from
    ``mapping`` (holmes.data.probes), else "unknown"."""
    import pandas as pd

    alpha = catalogue.stats.get("alpha", DEFAULTS["alpha"])
    mapping = mapping or {}
    rows = []
    for model, path in files.items():
        scores = pd.read_csv(path) if Path(path).is_file() else None
        if scores is None:
            log.warning("missing Holmes result: %s (%s)", model, path)
        for d in datasets:
            name = d["probing_dataset"]
            mine = mapping.get(name, {})
            base = {
                **model_columns(model, catalogue),
                "probing_dataset": name,
                "competence": d["competence"] or mine.get("competence") or UNKNOWN,
                "phenomenon": d["phenomenon"] or mine.get("phenomenon") or UNKNOWN,
                "probe_task_type": d["probe_task_type"],
                "metric": "pearson" if int(d["num_labels"]) == 1 else "macro_f1",
            }
            sel = scores[scores["probing_dataset"] == name] if scores is not None else None
            values = sel["score"].dropna() if sel is not None else []
            if sel is None or len(values) == 0:
                if sel is not None:
                    log.warning("no Holmes score for %s on %s", model, name)
                rows.append(
                    {
                        **base,
                        "mean": math.nan,
                        "sd": math.nan,
                        "ci_low": math.nan,
                        "ci_high": math.nan,
                        "n_seeds": 0,
                        "objective": "",
                        "encoding": "",
                        "status": "missing",
                    }
                )
                continue
            mean, lo, hi, _ = t_interval(list(values), alpha)
            rows.append(
                {
                    **base,
                    "mean": mean,
                    "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_seeds": int(len(values)),
                    "objective": str(sel["objective"].iloc[0]),
                    "encoding": str(sel["encoding"].iloc[0]),
                    "status": "ok",
                }
            )
    return pd.DataFrame(rows, columns=HOLMES_COLUMNS)


def winning_rates(holmes) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Holmes' mean winning rate: per dataset rank the models (max rank for ties, 1 = worst),
    normalise to (r - min) / (max - min); per competence the mean over its datasets x 100;
    overall the mean over all datasets x 100 (not the mean of the competences).
    -> {"rates": {competence or "overall": {model: rate}}, "counts": {...: {model: datasets ranked}}}."""
    ok = holmes[holmes["status"] == "ok"]
    if ok.empty:
        return {}
    wide = ok.pivot(index="probing_dataset", columns="model", values="mean")
    ranks = wide.rank(axis=1, method="max")
    lo, hi = ranks.min(axis=1), ranks.max(axis=1)
    spread = (hi - lo).where(hi > lo)  # a dataset where every model ties ranks nobody
    norm = ranks.sub(lo, axis=0).div(spread, axis=0)
    competence = ok.drop_duplicates("probing_dataset").set_index("probing_dataset")["competence"]
    out: Dict[str, Dict[str, float]] = {"overall": (norm.mean(axis=0) * 100).to_dict()}
    for comp, names in competence.groupby(competence).groups.items():
        out[comp] = (norm.loc[list(names)].mean(axis=0) * 100).to_dict()
    counts = {"overall": norm.notna().sum(axis=0).to_dict()}
    for comp, names in competence.groupby(competence).groups.items():
        counts[comp] = norm.loc[list(names)].notna().sum(axis=0).to_dict()
    return {"rates": out, "counts": counts}


def competence_table(holmes, catalogue: Catalogue):
    """Per (model, competence and "overall"): mean F1 and mean Pearson kept apart, winning rate.
    Datasets of unknown competence are left out (of "overall" too), and the log names them."""
    import pandas as pd

    unknown = sorted(holmes.loc[holmes["competence"] == UNKNOWN, "probing_dataset"].unique())
    if unknown:
        log.warning(
            "%d Holmes dataset(s) of unknown competence left out of the competence table and the winning rates "
            "(they are in holmes.csv; holmes.data.probes maps them): %s",
            len(unknown),
            ", ".join(unknown),
        )
        holmes = holmes[holmes["competence"] != UNKNOWN]
    wr = winning_rates(holmes)
    rows = []
    for model in holmes["model"].unique():
        mine = holmes[(holmes["model"] == model) & (holmes["status"] == "ok")]
        for comp in sorted(holmes["competence"].unique()) + ["overall"]:
            sel = mine if comp == "overall" else mine[mine["competence"] == comp]
            f1 = sel[sel["metric"] == "macro_f1"]["mean"]
            pr = sel[sel["metric"] == "pearson"]["mean"]
            rows.append(
                {
                    **{k: v for k, v in model_columns(model, catalogue).items() if k != "parameters"},
                    "competence": comp,
                    "mean_f1": float(f1.mean()) if len(f1) else math.nan,
                    "n_f1": int(len(f1)),
                    "mean_pearson": float(pr.mean()) if len(pr) else math.nan,
                    "n_pearson": int(len(pr)),
                    "winning_rate": (wr.get("rates", {}).get(comp) or {}).get(model, math.nan),
                    "n_ranked": int((wr.get("counts", {}).get(comp) or {}).get(model, 0)),
                }
            )
    return pd.DataFrame(rows, columns=COMPETENCE_COLUMNS)


def broken_models(checks: Optional[Dict[str, str]]) -> Dict[str, List[str]]:
    """model -> the reasons its sanity check (results/checks/{model}.json) found it broken."""
    out = {}
    for model, path in (checks or {}).items():
        if Path(path).is_file():
            with open(path, encoding="utf-8") as fh:
                check = json.load(fh)
            if check.get("status") == "broken":
                out[model] = list(check.get("reasons") or ["broken"])
    return out


def mark_broken(frame, broken: Dict[str, List[str]]) -> None:
    """Status "broken" for every row of a broken model (its values, if evaluated anyway, kept)."""
    if broken and not frame.empty:
        frame.loc[frame["model"].isin(list(broken)), "status"] = "broken"


def provenance(catalogue: Catalogue) -> Dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"mergelab": mergelab.__version__}
    for pkg in (
        "mergekit",
        "lm_eval",
        "transformers",
        "torch",
        "snakemake",
        "huggingface_hub",
        "datasets",
        "pandas",
        "seaborn",
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"tool_versions": versions, **catalogue.record()}
