"""The jobs of the merge stage: one merge (rule merge, and merge_released, search_best that
reuse it), and results/merges.tsv (merges_table)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List

from mergelab.plan.jobs import MergeJob, MergesTableJob
from mergelab.plan.models import merges_tsv

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment


def merge_job(exp: "Experiment", model: str) -> MergeJob:
    spec = exp.merge_spec(model)
    parents = [exp.models[m] for m in spec.inputs if m in exp.models]
    card = {
        "recipe": spec.recipe,
        "method": spec.method,
        "seed": spec.seed,
        "inputs": spec.inputs + spec.path_inputs,
        "parameters": spec.params,
        "hub_parents": exp.hub_ancestors(model),
    }
    if exp.reads_merges(model):  # a merge of merges: its card shows the tree
        card["lineage"] = exp.lineage(model)
    return MergeJob(
        mergekit_config=spec.mergekit_config,
        seed=spec.seed,
        card=card,
        hub_receipts={m.mergekit_ref: m.receipt for m in parents if m.receipt},
    )


def merges_table_job(exp: "Experiment") -> MergesTableJob:
    return MergesTableJob(merges=merge_records(exp))


def merge_records(exp: "Experiment") -> List[Dict[str, Any]]:
    """results/merges.tsv's rows: every merge, then every search's trials proposed so far
    (with their search and trial number)."""
    out = [spec.record() for spec in exp.merges.values()]
    for plan in exp.searches.values():
        for number, tid in enumerate(plan.trial_ids):
            if exp.trials.proposed(tid):
                out.append({**exp.merge_spec(tid).record(), "search": plan.name, "trial": number})
    return out


def merges_table(exp: "Experiment") -> str:
    return merges_tsv(merge_records(exp))
