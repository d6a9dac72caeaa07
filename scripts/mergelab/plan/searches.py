"""The config's searches (search:), checked against the harness and Holmes plans: their
objectives' tasks as harness.tasks are (and those reading from the Hub get their data once, by
harness_data), their competences as Holmes' (workflow/holmes/probes.csv, holmes.data.probes) or
overall. Part of loading the experiment (mergelab.plan.experiment.load_experiment)."""

from __future__ import annotations

import csv
from typing import Dict, List, Optional

from mergelab.plan.errors import close_matches, did_you_mean
from mergelab.plan.evaluation import HarnessPlan, HolmesPlan, check_settings
from mergelab.plan.holmes_sets import METADATA
from mergelab.plan.search import SearchPlan, build_search_plans
from mergelab.plan.tasks import hub_tasks


def build_searches(
    cfg, models, merges, harness: HarnessPlan, holmes: HolmesPlan, source, workdir, fail, lm_eval_tasks
) -> Dict[str, SearchPlan]:
    """The config's searches; their objectives' tasks are checked as harness.tasks are, and
    those reading from the Hub get their data once, by harness_data, as harness tasks do; their
    competences are Holmes' (workflow/holmes/probes.csv, holmes.data.probes) or overall."""
    if not cfg["search"]:
        return {}
    index: List[Optional[Dict[str, str]]] = []

    def known_task(key: str, task: str) -> None:
        if harness.is_local(task):
            return
        if not index:
            index.append(lm_eval_tasks())
        if index[0] is not None and task not in index[0]:
            near = close_matches(task, list(harness.local_tasks) + list(index[0]))
            fail(
                key,
                f"unknown lm-eval task {task!r}"
                + (f"; did you mean {', '.join(near)}?" if near else " (not a task, group or tag lm-eval knows)"),
            )

    def known_competence(key: str, name: str) -> None:
        if not holmes.active:
            fail(key, "a competence is measured by Holmes probing, which is off (holmes.activate)")
        known = competences(holmes.probes)
        if name not in known:
            fail(key, f"unknown Holmes competence {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})")

    def check(settings, key):
        check_settings(settings, key, fail)

    searches = build_search_plans(cfg, models, merges, source, workdir, known_task, known_competence, check)
    for plan in searches.values():
        for tid in plan.trial_ids:
            harness.model_dtypes[tid] = holmes.model_dtypes[tid] = plan.dtype
        extra = hub_tasks([t for t in plan.tasks if t not in harness.data_tasks], harness.task_folders)
        harness.data_tasks += [t for t in extra if t not in harness.data_tasks]
    return searches


def competences(probes: Optional[str]) -> List[str]:
    """Holmes' competences (workflow/holmes/probes.csv), the user's mapping's, and overall."""
    files = [str(METADATA)] + ([probes] if probes else [])
    found: List[str] = []
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            found += [(r.get("competence") or "").strip() for r in csv.DictReader(fh)]
    return sorted({c for c in found if c and c != "unknown"}) + ["overall"]
