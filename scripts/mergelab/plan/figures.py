"""The figures a campaign gets: one declaration each (its stem under results/plots/, when a
campaign gets it and for which wildcards, its report caption and category).

The declarations serve the DAG (the plot rule's outputs, the report) and the plot job; how a
figure is drawn is the presentation layer's (mergelab.analysis.outputs.DRAW, one entry per figure here).
Adding a figure: one entry here, one drawing in mergelab.analysis.outputs.DRAW, one caption under
workflow/report/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List

from mergelab.plan import paths
from mergelab.plan.catalogue import catalogue
from mergelab.plan.jobs import OrganizeJob, PlotJob

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment


@dataclass(frozen=True)
class Figure:
    stem: str  # under results/plots/, with the wildcards of its instances
    caption: str  # workflow/report/<caption>.rst
    category: str  # its section of the HTML report
    instances: Callable[["Experiment"], List[Dict[str, str]]]  # wildcards of each copy the campaign gets


# A search's best trials are evaluated like any merge, but only known once it ends: the figures a
# campaign gets count them from the start, so that its list (the plot rule's outputs) never changes.


def _evaluated_on_harness(exp) -> bool:
    return bool(exp.harness.tasks and (exp.harness.models or exp.searches))


def _probed(exp) -> bool:
    return bool(exp.holmes.models or (exp.holmes.active and exp.searches))


def _merges_evaluated(exp) -> bool:
    return bool((exp.merges and exp.evaluated) or exp.searches)


def _based(exp) -> bool:
    """Some merge (or search) has a base, which the normalised scores are relative to."""
    return any(s.base for s in exp.merges.values()) or any(p.recipe["base"] for p in exp.searches.values())


def _once_if(*conditions: Callable[[Any], bool]) -> Callable[[Any], List[Dict[str, str]]]:
    """One copy of the figure when every condition holds, else none."""
    return lambda e: [{}] if all(c(e) for c in conditions) else []


FIGURES: Dict[str, Figure] = {
    "harness": Figure(
        "results/plots/harness/{task}",
        "harness_task",
        "Harness",
        lambda e: [{"task": t} for t in e.harness.tasks] if _evaluated_on_harness(e) else [],
    ),
    "holmes_competences": Figure("results/plots/holmes_competences", "holmes_competences", "Holmes", _once_if(_probed)),
    "kendall_competences": Figure(
        "results/plots/kendall_tau_competences",
        "kendall",
        "Holmes vs harness",
        _once_if(_evaluated_on_harness, _probed),
    ),
    "kendall_datasets": Figure(
        "results/plots/kendall_tau_datasets", "kendall", "Holmes vs harness", _once_if(_evaluated_on_harness, _probed)
    ),
    "merge_vs_parents": Figure("results/plots/merge_vs_parents", "merges", "Merges", _once_if(_merges_evaluated)),
    "merge_outcomes": Figure("results/plots/merge_outcomes", "merges", "Merges", _once_if(_merges_evaluated)),
    "normalised_scores": Figure(
        "results/plots/normalised_scores", "normalised", "Merges", _once_if(_based, _evaluated_on_harness)
    ),
    "sweep": Figure(  # a recipe that sweeps a parameter (the expansion records which)
        "results/plots/sweep/{recipe}",
        "sweep",
        "Sweeps",
        lambda e: [{"recipe": r, "param": p} for r, p in e.sweeps.items()] if _merges_evaluated(e) else [],
    ),
}


def figures(exp: "Experiment") -> List[Dict[str, Any]]:
    """Every figure this campaign gets: {figure, wildcards, stem}, in declaration order."""
    out = []
    for name, fig in FIGURES.items():
        for wildcards in fig.instances(exp):
            out.append({"figure": name, "wildcards": wildcards, "stem": fig.stem.format(**wildcards)})
    return out


# ---- the jobs that make the tables and the figures


def organize_job(exp: "Experiment") -> OrganizeJob:
    return OrganizeJob(catalogue=catalogue(exp), files=result_files(exp))


def plot_job(exp: "Experiment") -> PlotJob:
    return PlotJob(catalogue=catalogue(exp), figures=figures(exp))


def result_files(exp: "Experiment") -> Dict[str, Any]:
    """The evaluation results the tables read (and the user's competence mapping, if any)."""
    files = {
        "harness": {
            m: {t: paths.HARNESS_JSON.format(model=m, task=t) for t in exp.harness.tasks} for m in exp.harness.models
        },
        "harness_items": {
            m: {t: paths.HARNESS_ITEMS.format(model=m, task=t) for t in exp.harness.tasks} for m in exp.harness.models
        },
        "holmes": {m: paths.HOLMES_SCORES.format(model=m) for m in exp.holmes.models},
        "holmes_manifest": exp.holmes.manifest if exp.holmes.models else "",
    }
    if exp.holmes.models and exp.holmes.probes:
        files["holmes_probes"] = exp.holmes.probes
    checks = {m: paths.CHECK.format(model=m) for m in exp.evaluated if exp.sanity.check_input(m)}
    if checks:  # only when on: a campaign without checks keeps its params
        files["checks"] = checks
    return files
