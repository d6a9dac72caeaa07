"""The jobs of the evaluation stages: the harness (per task, per model, its Hub data), Holmes
(probing, its data) and the sanity check of a merge before its evaluations."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mergelab.plan import paths
from mergelab.plan.jobs import (
    HarnessDataJob,
    HarnessJob,
    HarnessModelJob,
    HolmesDataJob,
    HolmesJob,
    HolmesSettings,
    SanityJob,
)

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment


def harness_job(exp: "Experiment", model: str, task: str) -> HarnessJob:
    if model not in exp.harness.models or task not in exp.harness.tasks:
        raise ValueError(f"({model}, {task}) is not an evaluation of this config")
    return HarnessJob(
        model=model,
        model_path=exp.model_path(model),
        receipt=exp.receipt(model),
        task=task,
        settings=exp.harness.settings_for(model, task),
        include_paths=exp.harness.include_paths,
        include_defaults=not exp.harness.is_local(task),
    )


def harness_model_job(exp: "Experiment", model: str) -> HarnessModelJob:
    h = exp.harness
    if model not in h.models:
        raise ValueError(f"{model!r} is not evaluated by the harness in this config")
    return HarnessModelJob(
        model=model,
        model_path=exp.model_path(model),
        receipt=exp.receipt(model),
        tasks=list(h.tasks),
        groups=h.task_groups(model),
        settings={t: h.settings_for(model, t) for t in h.tasks},
        include_paths=h.include_paths,
        include_defaults=not all(h.is_local(t) for t in h.tasks),
        local_tasks=[t for t in h.tasks if h.is_local(t)],
    )


def harness_data_job(exp: "Experiment", task: str) -> HarnessDataJob:
    h = exp.harness
    if task not in h.data_tasks:
        raise ValueError(f"{task!r} is no harness task of this config that reads from the Hub")
    return HarnessDataJob(
        task=task,
        include_paths=h.include_paths,
        include_defaults=not h.is_local(task),
        cache_dir=h.data_cache_dir,
    )


def holmes_job(exp: "Experiment", model: str) -> HolmesJob:
    if model not in exp.holmes.models:
        raise ValueError(f"{model!r} is not probed by this config")
    ho = exp.holmes
    return HolmesJob(
        model=model,
        model_path=exp.model_path(model),
        receipt=exp.receipt(model),
        data_dir=ho.data_dir,
        datasets=ho.datasets,
        settings=holmes_settings(exp, model),
    )


def sanity_job(exp: "Experiment", model: str) -> SanityJob:
    if model not in exp.sanity.checked:
        raise ValueError(f"{model!r} has no sanity check in this config (sanity.activate)")
    inputs = exp.merges[model].inputs if model in exp.merges else []
    return SanityJob(
        model=model,
        model_path=exp.model_path(model),
        receipt=exp.receipt(model),
        parents=[paths.CHECK.format(model=m) for m in inputs],
        on_fail=exp.sanity.on_fail,
        max_ppl_ratio=exp.sanity.max_ppl_ratio,
        trust_remote_code=exp.harness.trusts_remote_code(model),
    )


def holmes_settings(exp: "Experiment", model: str) -> HolmesSettings:
    """Holmes' settings for ``model``, with the model's harness setting trust_remote_code (in the
    params only when on: a key that campaigns without it never had)."""
    return replace(exp.holmes.settings_for(model), trust_remote_code=exp.harness.trusts_remote_code(model))


def holmes_data_job(exp: "Experiment") -> HolmesDataJob:
    ho = exp.holmes
    return HolmesDataJob(version=ho.version, root=ho.root, archive=ho.archive, url=ho.url, datasets=ho.datasets)
