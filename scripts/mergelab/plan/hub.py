"""The hub plan: how hub parents are fetched, and which merge is pushed to which repository."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict

from mergelab.hub import allow_patterns, token
from mergelab.plan.jobs import FetchJob, PushJob, PushResultsJob
from mergelab.plan.models import MergeSpec

if TYPE_CHECKING:  # pragma: no cover
    from mergelab.plan.experiment import Experiment

REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass
class HubPlan:
    fetch: Dict[str, Any]
    push: Dict[str, Any]
    retries: int
    retry_wait: float
    repos: Dict[str, str] = field(default_factory=dict)  # merge id -> repo id (when pushing)

    @property
    def pushing(self) -> bool:
        return bool(self.push["activate"])

    def repo(self, model: str) -> str:
        """The repository merge ``model`` is pushed to."""
        if model not in self.repos:
            raise ValueError(f"{model!r} is not a merge pushed by this config")
        return self.repos[model]


def build_hub_plan(cfg: dict, merges: Dict[str, MergeSpec], fail) -> HubPlan:
    h = cfg["hub"]
    plan = HubPlan(fetch=h["fetch"], push=h["push"], retries=h["retries"], retry_wait=float(h["retry_wait"]))
    if not plan.pushing:
        return plan
    ns = plan.push["namespace"]
    if not ns:
        fail("hub.push.namespace", "set the user or organization to push to")
    if not REPO_NAME.match(ns):
        fail("hub.push.namespace", f"{ns!r} is not a Hub user or organization name")
    seen: Dict[str, str] = {}
    for mid, spec in merges.items():
        try:
            name = plan.push["repo_name"].format(model=mid, recipe=spec.recipe, method=spec.method)
        except (KeyError, IndexError, ValueError) as e:
            fail("hub.push.repo_name", f"{plan.push['repo_name']!r}: use only {{model}}, {{recipe}}, {{method}} ({e})")
        if not REPO_NAME.match(name):
            fail(
                "hub.push.repo_name",
                f"{name!r} (for {mid}) is not a valid Hub repository name (letters, digits, '.', '_', '-'; at most 96)",
            )
        if name in seen:
            fail("hub.push.repo_name", f"{mid} and {seen[name]} would both be pushed to {ns}/{name}")
        seen[name] = mid
        plan.repos[mid] = f"{ns}/{name}"

    if not token():
        fail(
            "hub.push.activate",
            "pushing needs a Hugging Face token with write access: set HF_TOKEN or run "
            "`hf auth login` (mergelab never reads it from the config)",
        )
    return plan


# ---- the jobs of the hub stage


def fetch_job(exp: "Experiment", model: str) -> FetchJob:

    m = exp.models.get(model)
    if m is None or m.kind != "hub":
        raise ValueError(f"{model!r} is not a hub model of this config")
    fetch, cache = exp.hub.fetch, exp.hub.fetch["cache_dir"]
    return FetchJob(
        repo_id=m.location,
        revision=m.revision,
        patterns=allow_patterns(fetch["allow_patterns"], fetch["allow_pickles"]),
        cache_dir=str((exp.workdir / os.path.expanduser(cache)).resolve()) if cache else None,
        retries=exp.hub.retries,
        retry_wait=exp.hub.retry_wait,
    )


def push_job(exp: "Experiment", model: str) -> PushJob:
    return PushJob(
        repo_id=exp.hub.repo(model),
        private=exp.hub.push["private"],
        message=f"mergelab: {model}",
        retries=exp.hub.retries,
        retry_wait=exp.hub.retry_wait,
    )


def push_results_job(exp: "Experiment", model: str) -> PushResultsJob:
    return PushResultsJob(
        repo_id=exp.hub.repo(model), model=model, retries=exp.hub.retries, retry_wait=exp.hub.retry_wait
    )
