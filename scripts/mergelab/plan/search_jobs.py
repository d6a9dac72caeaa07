"""The jobs of a merge search: proposing a generation's trials, a trial's dev evaluation and
probing, the summary and its figure (the trials themselves are merges: mergelab.plan.merge_jobs)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mergelab.plan import paths
from mergelab.plan.evaluation import settings_groups
from mergelab.plan.evaluation_jobs import holmes_settings
from mergelab.plan.jobs import HarnessModelJob, SearchPlotJob, SearchProbeJob, SearchProposeJob, SearchSummaryJob

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment


def search_propose_job(exp: "Experiment", search: str, generation: str) -> SearchProposeJob:
    plan, g = exp.search(search), int(generation)
    if not 0 <= g < plan.generations:
        raise ValueError(f"search {search} has generations 0 to {plan.generations - 1}, not {g}")
    numbers = plan.numbers(g)
    told = plan.numbers(g - 1) if g else []
    return SearchProposeJob(
        search=plan.spec(), generation=g, numbers=numbers, models=[plan.trial_id(n) for n in numbers], told=told
    )


def search_eval_job(exp: "Experiment", search: str, model: str) -> HarnessModelJob:
    """A trial's dev evaluation: the objectives' tasks with the search's limit, after one model load."""
    found = exp.trial(model)
    if found is None or found[0].name != search or not found[0].tasks:
        raise ValueError(f"{model!r} is not a trial of search {search!r} evaluated on harness tasks")
    plan, h = found[0], exp.harness
    settings = {t: replace(h.settings_for(model, t), limit=plan.limit, log_samples=False) for t in plan.tasks}
    return HarnessModelJob(
        model=model,
        model_path=str(exp.workdir / paths.MERGED_MODEL.format(model=model)),  # the trial's own weights
        receipt=None,
        tasks=plan.tasks,
        groups=settings_groups(settings),
        settings=settings,
        include_paths=h.include_paths,
        include_defaults=not all(h.is_local(t) for t in plan.tasks),
        local_tasks=[t for t in plan.tasks if h.is_local(t)],
    )


def search_probe_job(exp: "Experiment", search: str, model: str) -> SearchProbeJob:
    """A trial's dev probing: Holmes on the datasets of the objectives' competences (all for overall)."""
    found = exp.trial(model)
    if found is None or found[0].name != search or not found[0].competences:
        raise ValueError(f"{model!r} is not a trial of search {search!r} probed by Holmes")
    ho = exp.holmes
    return SearchProbeJob(
        model=model,
        model_path=str(exp.workdir / paths.MERGED_MODEL.format(model=model)),
        receipt=None,
        data_dir=ho.data_dir,
        datasets=ho.datasets,
        settings=holmes_settings(exp, model),
        competences=found[0].competences,
    )


def search_summary_job(exp: "Experiment", search: str) -> SearchSummaryJob:
    plan = exp.search(search)
    recipe = {k: v for k, v in plan.recipe.items() if k not in ("name", "methods", "method_parameters")}
    return SearchSummaryJob(search=plan.spec(), told=plan.numbers(plan.generations - 1), recipe=recipe)


def search_plot_job(exp: "Experiment", search: str) -> SearchPlotJob:
    return SearchPlotJob(search=exp.search(search).spec())
