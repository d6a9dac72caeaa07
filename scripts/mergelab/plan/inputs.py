"""The inputs of a job of each rule (its entry of mergelab.plan.rules.RULES names the function):
named files, relative to the working directory. The keys ``model`` and ``models`` name model
weights (the DAG glue makes a deleted merge's ancient); what a search decides (checkpoints) the
glue adds. A job the config does not have fails here, while the DAG is built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from mergelab.plan import paths
from mergelab.plan.figures import result_files

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment

Inputs = Dict[str, Any]


def no_inputs(exp: "Experiment", **wildcards: str) -> Inputs:
    """A rule whose only inputs are what a search decides (merges_table: every trial's row)."""
    return {}


def merge_inputs(exp: "Experiment", model: str, search: str = "") -> Inputs:
    spec = exp.merge_spec(model)  # a model that is no merge of the config fails here
    out: Inputs = {"models": exp.merge_inputs(model)}
    if spec.raw_file:
        out["mergekit_config"] = paths.relative(spec.raw_file, exp.workdir)
    return out


def merge_record_inputs(exp: "Experiment", model: str) -> Inputs:
    if model not in exp.storage.released:
        raise ValueError(f"{model!r} keeps its weights (storage.keep_merges): it has no record")
    return {"model": paths.MERGED_MODEL.format(model=model)}


def push_inputs(exp: "Experiment", model: str) -> Inputs:
    return {"model": paths.MERGED_MODEL.format(model=model)}


def push_results_inputs(exp: "Experiment", model: str) -> Inputs:
    """A pushed merge's card: in its directory, or in its record once its weights are deleted."""
    card = paths.MERGE_RECORD if model in exp.storage.released else paths.MERGED_MODEL
    return {
        "receipt": paths.PUSH_RECEIPT.format(model=model),
        "model": card.format(model=model),
        "harness": paths.TABLES["harness"],
        "competences": paths.TABLES["competences"],
        "comparisons": paths.TABLES["comparisons"],
    }


def sanity_inputs(exp: "Experiment", model: str) -> Inputs:
    spec = exp.job("sanity_check", model=model)  # a model without a check fails here
    return {"model": exp.model_input(model), "parents": spec.parents}


def harness_inputs(exp: "Experiment", model: str, task: str) -> Inputs:
    exp.job("harness_eval", model=model, task=task)  # not an evaluation: fails here
    out = {"model": exp.model_input(model), "check": exp.sanity.check_input(model)}
    return {**out, "data": exp.harness.data_receipts([task])}


def harness_model_inputs(exp: "Experiment", model: str) -> Inputs:
    exp.job("harness_eval_model", model=model)  # not evaluated by the harness: fails here
    out = {"model": exp.model_input(model), "check": exp.sanity.check_input(model)}
    return {**out, "data": exp.harness.data_receipts(exp.harness.tasks)}


def holmes_inputs(exp: "Experiment", model: str) -> Inputs:
    exp.job("holmes_eval", model=model)
    out = {"model": exp.model_input(model), "manifest": exp.holmes.manifest}
    return {**out, "check": exp.sanity.check_input(model)}


def search_propose_inputs(exp: "Experiment", search: str, generation: str) -> Inputs:
    """Generation g > 0: the previous generation's journal and its trials' dev results."""
    plan, g = exp.search(search), int(generation)
    if g == 0:
        return {}
    return {"journal": plan.journal(g - 1), **plan.dev_inputs(plan.numbers(g - 1))}


def search_eval_inputs(exp: "Experiment", search: str, model: str) -> Inputs:
    spec = exp.job("search_eval", search=search, model=model)
    return {"model": [paths.MERGED_MODEL.format(model=spec.model)], "data": exp.harness.data_receipts(spec.tasks)}


def search_probe_inputs(exp: "Experiment", search: str, model: str) -> Inputs:
    exp.job("search_probe", search=search, model=model)
    return {"model": [paths.MERGED_MODEL.format(model=model)], "manifest": exp.holmes.manifest}


def search_summary_inputs(exp: "Experiment", search: str) -> Inputs:
    """The last generation's journal, and every trial's dev results (trials.csv)."""
    plan = exp.search(search)
    return {"journal": plan.journal(plan.generations - 1), **plan.dev_inputs(list(range(plan.trials)))}


def organize_inputs(exp: "Experiment") -> Inputs:
    """Every result file the tables read (the searches' best trials' too: the glue waits for them)."""
    files = result_files(exp)
    out: Inputs = {"merges": paths.MERGES_TABLE}
    out["harness"] = [p for tasks in files["harness"].values() for p in tasks.values()]
    out["harness_items"] = [p for tasks in files["harness_items"].values() for p in tasks.values()]
    out["holmes"] = list(files["holmes"].values())
    if files["holmes_manifest"]:
        out["manifest"] = files["holmes_manifest"]
    if files.get("holmes_probes"):
        out["probes"] = paths.relative(files["holmes_probes"], exp.workdir)
    if files.get("checks"):
        out["checks"] = list(files["checks"].values())
    return out


def plot_inputs(exp: "Experiment") -> Inputs:
    return dict(paths.TABLES)
