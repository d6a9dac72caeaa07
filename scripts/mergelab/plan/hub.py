"""The hub plan: how hub parents are fetched, and which merge is pushed to which repository."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict

from mergelab.plan.models import MergeSpec

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
    from mergelab.hub import token

    if not token():
        fail(
            "hub.push.activate",
            "pushing needs a Hugging Face token with write access: set HF_TOKEN or run "
            "`hf auth login` (mergelab never reads it from the config)",
        )
    return plan
