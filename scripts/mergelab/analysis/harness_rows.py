"""One lm-eval results dict as tidy rows (one per task or group, metric and filter), the
primary metric of each task, and the headline of a harness table built of such rows.

Primary metric of a task (the one the plots and the leaderboard show): the first
of PRIMARY_METRICS the task reports, else its first metric in alphabetical
order; with the filter "none", else "strict-match", else the first in
alphabetical order.

model_columns: the catalogue's columns (role, recipe, method, parameters) that every tidy
table (mergelab.analysis.organize) starts a model's rows with.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Optional

from mergelab.plan.jobs import Catalogue

PRIMARY_METRICS = [
    "acc_norm",
    "acc",
    "exact_match",
    "prompt_level_strict_acc",
    "inst_level_strict_acc",
    "f1",
    "mcc",
    "em",
    "bleu",
    "rouge1",
    "word_perplexity",
    "byte_perplexity",
    "bits_per_byte",
    "perplexity",
]
PRIMARY_FILTERS = ["none", "strict-match"]
LOWER_IS_BETTER = {"word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity", "ter"}

HARNESS_COLUMNS = [
    "model",
    "role",
    "recipe",
    "method",
    "parameters",
    "harness_task",
    "task",
    "group",
    "is_group",
    "metric",
    "filter",
    "value",
    "stderr",
    "ci_low",
    "ci_high",
    "n_samples",
    "n_shot",
    "version",
    "higher_is_better",
    "primary",
    "status",
    "batch_size",
    "dtype",
    "num_fewshot",
    "limit",
    "backend",
    "quantization",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "gen_kwargs",
    "seeds",
    "lm_eval_version",
]


def _float(v) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan  # lm-eval writes "N/A" for a stderr it cannot compute


def model_columns(model: str, catalogue: Optional[Catalogue]) -> Dict[str, Any]:
    """The catalogue's columns of ``model`` (None: a model of none, e.g. a search's trial)."""
    info = catalogue.models.get(model, {}) if catalogue else {}
    params = info.get("parameters")
    return {
        "model": model,
        "role": info.get("role", ""),
        "recipe": info.get("recipe", ""),
        "method": info.get("method", ""),
        "parameters": json.dumps(params, sort_keys=True) if params else "",
    }


def harness_rows(
    res: Dict[str, Any], model: str, harness_task: str, catalogue: Optional[Catalogue] = None
) -> List[Dict]:
    """Every (task or group, metric, filter) of one lm-eval results dict, one row each."""
    group_of = {sub: group for group, subs in (res.get("group_subtasks") or {}).items() for sub in subs}
    groups = {g for g, subs in (res.get("group_subtasks") or {}).items() if subs}
    entries = dict(res.get("results") or {})
    for name, metrics in (res.get("groups") or {}).items():
        entries.setdefault(name, metrics)
    ml = res.get("mergelab") or {}
    s = ml.get("settings") or {}
    shared = {
        **model_columns(model, catalogue),
        "harness_task": harness_task,
        "batch_size": ml.get("batch_size_used", (res.get("config") or {}).get("batch_size")),
        "dtype": (res.get("config") or {}).get("model_dtype", s.get("dtype")),
        "num_fewshot": s.get("num_fewshot"),
        "limit": s.get("limit"),
        "backend": s.get("backend"),
        "quantization": s.get("quantization"),
        "apply_chat_template": s.get("apply_chat_template"),
        "fewshot_as_multiturn": s.get("fewshot_as_multiturn"),
        "gen_kwargs": json.dumps(s.get("gen_kwargs")) if s.get("gen_kwargs") is not None else "",
        "seeds": json.dumps(s.get("seeds"), sort_keys=True) if s.get("seeds") else "",
        "lm_eval_version": ml.get("lm_eval_version", res.get("lm_eval_version", "")),
    }
    rows = []
    for task, metrics in entries.items():
        n = ((res.get("n-samples") or {}).get(task) or {}).get("effective", metrics.get("sample_len"))
        hib = (res.get("higher_is_better") or {}).get(task) or {}
        for key, value in metrics.items():
            if "," not in key or isinstance(value, (dict, list)):
                continue
            metric, filt = key.split(",", 1)
            if metric.endswith("_stderr"):
                continue
            v = _float(value)
            rows.append(
                {
                    **shared,
                    "task": task,
                    "group": group_of.get(task, ""),
                    "is_group": task in groups,
                    "metric": metric,
                    "filter": filt,
                    "value": v,
                    "stderr": _float(metrics.get(f"{metric}_stderr,{filt}")),
                    "n_samples": n,
                    "n_shot": (res.get("n-shot") or {}).get(task),
                    "version": (res.get("versions") or {}).get(task),
                    "higher_is_better": hib.get(metric, metric not in LOWER_IS_BETTER),
                    "primary": False,
                    "status": "ok" if not math.isnan(v) else "missing",
                }
            )
    mark_primary(rows)
    return rows


def primary_choice(pairs: Iterable[tuple]) -> Optional[tuple]:
    """The primary (metric, filter) among a task's pairs (see the module docstring)."""
    pairs = sorted(set(pairs))
    if not pairs:
        return None
    metrics = {m for m, _ in pairs}
    metric = next((m for m in PRIMARY_METRICS if m in metrics), sorted(metrics)[0])
    filters = sorted(f for m, f in pairs if m == metric)
    filt = next((f for f in PRIMARY_FILTERS if f in filters), filters[0])
    return metric, filt


def mark_primary(rows: List[Dict]) -> None:
    by_task: Dict[str, List[Dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    for task_rows in by_task.values():
        choice = primary_choice((r["metric"], r["filter"]) for r in task_rows)
        for r in task_rows:
            r["primary"] = (r["metric"], r["filter"]) == choice


def headline(harness) -> "object":
    """model x harness task: the primary metric of the configured task (a group's own value)."""
    sel = harness[(harness["task"] == harness["harness_task"]) & harness["primary"].astype(bool)]
    columns = ["model", "harness_task", "metric", "filter", "value", "stderr", "ci_low", "ci_high"]
    return sel.reindex(columns=columns + ["higher_is_better", "status"])  # a table without intervals: NaN
