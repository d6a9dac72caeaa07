"""Per-item results of an lm-eval run: results/harness/{model}/{task}.items.parquet.

One row per item and per-item metric lm-eval computes, from the samples it logs. Light: pandas
only when writing (a skipped evaluation, in any job's env, writes the columns only).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from mergelab.runtime.jobs import atomic_file

# results/harness/{model}/{task}.items.parquet (fixed names: a check outside the project reads them);
# weight: 1, or for a corpus metric whose per-document value is a pair (word_perplexity,
# byte_perplexity, bits_per_byte: loglikelihood and words or bytes) the second of the pair,
# value being the first, so that the corpus value can be recomputed from any subset of documents
ITEM_COLUMNS = ["task", "doc_id", "filter", "metric", "value", "weight"]


def item_rows(samples: Dict[str, List[Dict[str, Any]]]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """One row per (task, document, filter, metric) of lm-eval's logged samples (task -> rows),
    for every metric whose per-item value is a number, or a pair of numbers (a corpus metric:
    the document's loglikelihood and its words or bytes). Returns (rows, the metrics left out:
    per-item values that are texts, as bleu's or f1's, are aggregated over the corpus only)."""
    rows: List[Dict[str, Any]] = []
    left_out = set()
    for task, samples_of_task in (samples or {}).items():
        for sample in samples_of_task:
            for metric in sample.get("metrics") or []:
                value, weight = _item_value(sample.get(metric))
                if value is None:
                    left_out.add(f"{task}: {metric}")
                    continue
                rows.append(
                    {
                        "task": task,
                        "doc_id": int(sample["doc_id"]),
                        "filter": str(sample.get("filter", "none")),
                        "metric": metric,
                        "value": value,
                        "weight": weight,
                    }
                )
    return rows, sorted(left_out)


def _number(v) -> Optional[float]:
    import numbers

    if isinstance(v, numbers.Real):  # bool, int, float, numpy scalars
        return float(v)
    return None


def _item_value(v) -> Tuple[Optional[float], float]:
    """(value, weight) of one per-item metric value; (None, 0) when it is no number."""
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and _number(v[0]) is not None and _number(v[1]) is not None:
            return _number(v[0]), _number(v[1])
        return None, 0.0
    n = _number(v)
    return (n, 1.0) if n is not None else (None, 0.0)


def items_frame(rows: List[Dict[str, Any]]):
    """The per-item table of ``rows`` (item_rows), typed the same whether empty or not."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    types = {"task": "string", "doc_id": "int64", "filter": "string", "metric": "string"}
    return frame.astype({**types, "value": "float64", "weight": "float64"})


def write_items(rows: List[Dict[str, Any]], path: str) -> None:
    """results/harness/{model}/{task}.items.parquet, atomically (no rows: the columns only)."""
    with atomic_file(path, "wb") as fh:
        items_frame(rows).to_parquet(fh, index=False)
