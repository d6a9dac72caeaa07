"""The jobs of the merge stage: one merge (rule merge, and merge_released, search_best that
reuse it), and results/merges.tsv (merges_table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mergelab.plan.jobs import MergeJob, MergesTableJob

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
    return MergesTableJob(merges=exp.merge_records())
