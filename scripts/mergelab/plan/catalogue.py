"""The catalogue: what the tables, the figures and provenance.json know about a campaign (every
model, its role, recipe, method, parameters and lineage; the evaluation settings), the payload of
the organize and plot jobs (mergelab.plan.jobs.Catalogue)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from mergelab.plan.jobs import Catalogue

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment


@dataclass(frozen=True)
class StatsPlan:
    """stats: how the tables test and bound differences (mergelab.analysis.stats)."""

    alpha: float  # significance level; the intervals are (1 - alpha) percentile intervals
    bootstrap: int  # resamples of the paired bootstrap and of the sign-flip permutation test
    correction: str  # holm, bh or none: the p-values' adjustment across a family of comparisons
    seed: int  # of the resampling


def catalogue(exp: "Experiment") -> Catalogue:
    """The catalogue of ``exp``: its models and merges in the config's order, then every search's
    best trials (evaluated like any merge), a merge of merges with its tree down to the parents."""
    models = {name: m.describe(exp.role(name)) for name, m in exp.models.items()}
    models.update({mid: spec.describe() for mid, spec in exp.merges.items()})
    for search, best in exp.best.items():  # a search's best trials, evaluated like any merge
        models.update({m: {**exp.merge_spec(m).describe(), "search": search} for m in best})
    for mid in exp.merges:
        if exp.reads_merges(mid):  # provenance.json: the tree down to the parents
            models[mid]["lineage"] = exp.lineage(mid)
    h, ho = exp.harness, exp.holmes
    return Catalogue(
        models=models,
        model_order=list(models),
        harness={
            "tasks": h.tasks,
            "settings": h.settings,
            "model_settings": h.model_settings,
            "task_settings": h.task_settings,
        },
        holmes={"active": ho.active, "version": ho.version, "datasets": ho.datasets, "settings": ho.settings.record()},
        stats=asdict(exp.stats),
    )
