"""The rule table: what every rule of the workflow is, in one place.

One entry per rule (workflow/rules/*.smk, and the Snakefile's target rules): the builder of its
job spec (whose return type is the spec class), its version, how its jobs are sized when it is a
GPU rule, whether it is light (runs where snakemake runs unless compute.light_rules: cluster),
the target rule that makes all its files, its priority, and how it waits for a merge search. The
DAG glue (workflow/rules/common.smk), the command line's hints, the SLURM profile's test and the
docs read it; no other list of rule names is kept by hand. A rule made by ``use rule A as B``
names A in ``like``: its jobs are A's.

Adding a rule: its block in a workflow/rules/*.smk file, its entry here (with its spec class in
mergelab.plan.jobs and its builder beside its stage's plan), its job script, its logic; then
`make docs` writes its SLURM profile lines and its name in the docs' lists (mergelab.docs.rule_lists).

Versions: a change that alters what a rule's jobs compute bumps the rule's version here; every
job carries it as its param ``version``, so exactly that rule's jobs and what depends on them
rerun (Snakemake's code trigger, which reruns on any edit of a script, is off in
profiles/default). See docs/development.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from mergelab.plan import jobs
from mergelab.plan.evaluation_jobs import (
    harness_data_job,
    harness_job,
    harness_model_job,
    holmes_data_job,
    holmes_job,
    sanity_job,
)
from mergelab.plan.figures import organize_job, plot_job
from mergelab.plan.hub import fetch_job, push_job, push_results_job
from mergelab.plan.inputs import (
    harness_inputs,
    harness_model_inputs,
    holmes_inputs,
    merge_inputs,
    merge_record_inputs,
    no_inputs,
    organize_inputs,
    plot_inputs,
    push_inputs,
    push_results_inputs,
    sanity_inputs,
    search_eval_inputs,
    search_probe_inputs,
    search_propose_inputs,
    search_summary_inputs,
)
from mergelab.plan.jobs import FIRST_VERSION, JobSpec
from mergelab.plan.merge_jobs import merge_job, merges_table_job
from mergelab.plan.resources import Sizing, job_resources
from mergelab.plan.search_jobs import (
    search_eval_job,
    search_plot_job,
    search_probe_job,
    search_propose_job,
    search_summary_job,
)

# How GPU jobs are sized (mergelab.plan.resources): runtime = fixed + per_b minutes per billion parameters.
MERGE = Sizing("merge", fixed=10, per_b=2, key="merge")
HARNESS = Sizing("harness", fixed=60, per_b=15, key="harness_eval")
HOLMES = Sizing("holmes", fixed=30, per_b=5, key="holmes_eval")
SANITY = Sizing("stored", fixed=10, per_b=2, key="sanity_check")
HARNESS_TASKS = Sizing("tasks", per_task=HARNESS, tasks=lambda exp, model: exp.harness.tasks, key="harness_eval_model")
SEARCH_TASKS = Sizing("tasks", per_task=HARNESS, tasks=lambda exp, model: exp.trial(model)[0].tasks)

# Priorities: a search's chain of generations runs before other evaluations; jobs reading merged
# weights run before new merges are made, when weights are deleted (storage.keep_merges).
SEARCH = "search"
READER = "reader"


@dataclass(frozen=True)
class Rule:
    name: str
    build: Optional[Callable[..., JobSpec]] = None  # its job spec's builder: build(exp, **wildcards)
    inputs: Optional[Callable[..., Dict[str, Any]]] = None  # its named inputs: inputs(exp, **wildcards)
    version: int = 1
    like: Optional[str] = None  # `use rule <like> as <name>`: params, version, sizing and priority are like's
    gpu: Optional[Sizing] = None  # a GPU rule: its jobs are sized from their models (resources gpu, mem_mb, runtime)
    light: bool = False  # local unless compute.light_rules: cluster
    target: Optional[str] = None  # the target rule that makes every file of this per-model rule
    priority: Optional[str] = None  # SEARCH, READER or none
    trial: bool = False  # a search trial's own jobs: they wait for their generation's proposals only
    lists_every_model: bool = False  # its params list every evaluated model: it waits for every search's summary
    is_target: bool = False  # a target rule of the Snakefile (all, merges, ...): no job of its own

    @property
    def spec(self) -> Optional[type]:
        """The job spec class (the builder's return type), or None for a rule without one."""
        return getattr(jobs, self.build.__annotations__["return"]) if self.build else None


def _table(*rules: Rule) -> Dict[str, Rule]:
    return {r.name: r for r in rules}


RULES: Dict[str, Rule] = _table(
    # demo stage
    Rule("demo_models", light=True),
    # merge stage
    Rule("merge", merge_job, merge_inputs, gpu=MERGE, target="merges", trial=True),
    Rule("merge_released", like="merge", target="merges"),
    Rule("merge_record", inputs=merge_record_inputs, priority=READER),
    Rule("merges_table", merges_table_job, no_inputs, light=True, lists_every_model=True),
    # hub stage
    Rule("fetch", fetch_job, light=True, target="merges"),  # and evaluations: whatever needs the parent
    Rule("push", push_job, push_inputs, light=True, target="pushes", priority=READER),
    Rule("push_results", push_results_job, push_results_inputs, light=True, target="pushes"),
    # sanity stage
    Rule("sanity_check", sanity_job, sanity_inputs, gpu=SANITY, priority=READER),
    # harness stage
    Rule("harness_data", harness_data_job, light=True),
    Rule("harness_eval", harness_job, harness_inputs, gpu=HARNESS, target="evaluations", priority=READER),
    Rule("harness_eval_samples", like="harness_eval", target="evaluations"),
    Rule(
        "harness_eval_model",
        harness_model_job,
        harness_model_inputs,
        gpu=HARNESS_TASKS,
        target="evaluations",
        priority=READER,
    ),
    # Holmes stage
    Rule("holmes_data", holmes_data_job, light=True),
    Rule("holmes_eval", holmes_job, holmes_inputs, gpu=HOLMES, target="evaluations", priority=READER),
    # merge search
    Rule("search_propose", search_propose_job, search_propose_inputs, light=True, priority=SEARCH),
    Rule("search_eval", search_eval_job, search_eval_inputs, gpu=SEARCH_TASKS, priority=SEARCH, trial=True),
    Rule("search_probe", search_probe_job, search_probe_inputs, gpu=HOLMES, priority=SEARCH, trial=True),
    Rule("search_best", like="merge"),
    Rule("search_summary", search_summary_job, search_summary_inputs, light=True),
    Rule("search_plot", search_plot_job, light=True),
    # tables and figures
    Rule("organize", organize_job, organize_inputs, light=True, lists_every_model=True),
    Rule("plot", plot_job, plot_inputs, light=True, lists_every_model=True),
    # the Snakefile's targets
    *(Rule(t, is_target=True) for t in ("all", "merges", "searches", "evaluations", "tables", "plots", "pushes")),
)


def rule(name: str) -> Rule:
    """The entry of rule ``name``; a rule made with ``use rule`` gives its original's."""
    r = RULES[name]
    return RULES[r.like] if r.like else r


def job_rules() -> Dict[str, Rule]:
    """The rules with a job spec: rule name -> entry."""
    return {n: r for n, r in RULES.items() if r.build}


def gpu_rules() -> list:
    """Every rule whose jobs run on GPUs (those made with ``use rule`` too)."""
    return [n for n in RULES if rule(n).gpu]


def version_param(name: str) -> Any:
    """The param ``version`` of the jobs of rule ``name``: version 1 is FIRST_VERSION, which
    Snakemake does not record, so that campaigns finished before rules had versions rerun
    nothing; from 2 on a string that Snakemake records and compares ('merge v2')."""
    v = rule(name).version
    return FIRST_VERSION if v == 1 else f"{rule(name).name} v{v}"


def rule_resources(exp, name: str, **wildcards: str) -> Dict[str, int]:
    """gpu, mem_mb and runtime of one job of GPU rule ``name`` (mergelab.plan.resources.job_resources)."""
    return job_resources(exp, rule(name).gpu, **wildcards)
