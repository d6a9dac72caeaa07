"""The experiment: every model, merge and evaluation of a campaign, and the spec of every job.

``load_experiment`` validates a config and expands it; the Experiment is the one
catalogue the DAG, the jobs' params, the tables and the figures are built from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from mergelab.plan import paths
from mergelab.plan.catalogue import StatsPlan
from mergelab.plan.errors import ConfigError
from mergelab.plan.evaluation import HarnessPlan, HolmesPlan, build_harness_plan, build_holmes_plan, select_models
from mergelab.plan.figures import figures
from mergelab.plan.hub import HubPlan, build_hub_plan
from mergelab.plan.jobs import JobSpec
from mergelab.plan.load import fill_defaults, load_schema, validate_schema
from mergelab.plan.merges import expand_recipes
from mergelab.plan.models import MergeSpec, ModelSpec, model_dtype, resolve_models
from mergelab.plan.resources import ComputePlan
from mergelab.plan.rules import RULES
from mergelab.plan.sanity import SanityPlan, build_sanity_plan
from mergelab.plan.search import SearchPlan
from mergelab.plan.searches import build_searches
from mergelab.plan.storage import StoragePlan, build_storage_plan
from mergelab.plan.trials import Trials


@dataclass(frozen=True, eq=False)
class Experiment:
    source: str
    config: dict
    models: Dict[str, ModelSpec]
    merges: Dict[str, MergeSpec]
    harness: HarnessPlan
    holmes: HolmesPlan
    hub: HubPlan
    storage: StoragePlan
    sanity: SanityPlan
    compute: ComputePlan
    stats: StatsPlan
    trials: Trials  # the searches, and the one reader of what their checkpoints wrote
    workdir: Path = field(default_factory=Path.cwd)
    best: Dict[str, Tuple[str, ...]] = field(default_factory=dict)  # search -> its best trials, once known
    _jobs: Dict[tuple, Tuple[JobSpec, Dict[str, Any]]] = field(default_factory=dict, repr=False)

    # ---- merge search (mergelab.plan.search, mergelab.plan.trials) ------------
    @property
    def searches(self) -> Dict[str, SearchPlan]:
        return self.trials.searches

    def trial(self, name: str) -> Optional[Tuple[SearchPlan, int]]:
        """(the search, the trial number) when ``name`` is a trial's merge id, else None."""
        return self.trials.find(name)

    @property
    def trial_ids(self) -> List[str]:
        return self.trials.ids

    def is_merge(self, name: str) -> bool:
        """A merge of the config, or a search's trial."""
        return name in self.merges or self.trial(name) is not None

    def proposals_file(self, name: str) -> str:
        return self.trials.proposals_file(name)

    def with_best_trials(self) -> "Experiment":
        """This experiment with the best trials of every finished search (its best.yaml, written
        by checkpoint search_summary) evaluated like any merge: on the full tasks, by Holmes, in
        the tables and figures. A new view when they changed (a search ended, or ran again), else
        this one; nothing built is changed."""
        best = self.trials.best()
        if best == self.best:
            return self
        trials = [m for ms in best.values() for m in ms]
        harness = [m for m in self.harness.models if not self.trial(m)]
        holmes = [m for m in self.holmes.models if not self.trial(m)]
        harness += [m for m in trials if m not in harness] if self.harness.tasks else []
        holmes += [m for m in trials if m not in holmes] if self.holmes.active else []
        return replace(
            self,
            harness=replace(self.harness, models=harness),
            holmes=replace(self.holmes, models=holmes),
            best=best,
            _jobs={},
        )

    def model_path(self, name: str) -> str:
        """What tools load for model ``name``: a local directory, or a hub id (parents)."""
        if self.is_merge(name):
            return str(self.workdir / self.model_input(name)[0])
        return self.models[name].location

    def model_input(self, name: str) -> List[str]:
        """The Snakemake input naming the model's directory (a hub parent's: its fetch receipt).
        A search's trial, evaluated in full as a best trial: its weights merged again beside
        the search (search_best), when the trials' own are deleted (keep_trials: false)."""
        found = self.trial(name)
        if found and not found[0].keep_trials:
            return [paths.SEARCH_BEST_MODEL.format(search=found[0].name, model=name)]
        if self.is_merge(name):
            return [paths.MERGED_MODEL.format(model=name)]
        return [self.models[name].input_path]

    def merge_inputs(self, model: str) -> List[str]:
        """The Snakemake inputs of merge ``model``: the directories (or fetch receipts) of the
        models it reads, merges among them, and the directories a raw file names by path."""
        spec = self.merge_spec(model)
        return [p for name in spec.inputs for p in self.model_input(name)] + list(spec.path_inputs)

    def lineage(self, name: str) -> Dict[str, Any]:
        """The tree a model comes from: a merge with the trees of what it read, down to the parents."""
        if not self.is_merge(name):
            m = self.models[name]
            return {"model": name, "kind": m.kind, "location": m.location, "revision": m.revision}
        spec = self.merge_spec(name)
        inputs = [self.lineage(i) for i in spec.inputs] + [{"model": p, "kind": "path"} for p in spec.path_inputs]
        return {"model": name, "method": spec.method, "recipe": spec.recipe, "inputs": inputs}

    def hub_ancestors(self, name: str) -> List[str]:
        """The hub ids of the parents a model comes from, through merges of merges."""
        if not self.is_merge(name):
            m = self.models[name]
            return [m.location] if m.kind == "hub" else []
        out: List[str] = []
        for i in self.merge_spec(name).inputs:
            out += [h for h in self.hub_ancestors(i) if h not in out]
        return out

    def reads_merges(self, model: str) -> bool:
        return any(i in self.merges for i in self.merge_spec(model).inputs)

    def role(self, name: str) -> str:
        """merge, base (the base of some recipe) or parent."""
        if self.is_merge(name):
            return "merge"
        return "base" if any(spec.base == name for spec in self.merges.values()) else "parent"

    def receipt(self, name: str) -> Optional[str]:
        """For a hub parent, the fetch receipt that gives its local snapshot; else None."""
        return None if self.is_merge(name) else self.models[name].receipt

    def model_dtype(self, name: str) -> str:
        """The dtype a model's weights are in (auto: as its config says)."""
        return (
            self.merge_spec(name, estimate=True).dtype
            if self.trial(name)
            else model_dtype(name, self.models, self.merges)
        )

    def gpus(self, name: str) -> Optional[int]:
        """The GPUs the config gives model ``name``'s jobs; None: estimate from the size."""
        spec = (
            self.merges.get(name)
            or self.models.get(name)
            or (self.merge_spec(name, estimate=True) if self.trial(name) else None)
        )
        return None if spec is None else spec.gpus

    def resource_overrides(self, name: str) -> Dict[str, Any]:
        """The config's per-rule resources for model ``name``'s jobs (models.<name>.resources)."""
        spec = (
            self.merges.get(name)
            or self.models.get(name)
            or (self.merge_spec(name, estimate=True) if self.trial(name) else None)
        )
        return dict((spec.resources if spec else None) or {})

    @property
    def sweeps(self) -> Dict[str, str]:
        """recipe -> the parameter it sweeps (its first method that sweeps one: the first such parameter)."""
        out: Dict[str, str] = {}
        for spec in self.merges.values():
            if spec.swept and spec.recipe not in out:
                out[spec.recipe] = spec.swept[0]
        return out

    @property
    def evaluated(self) -> List[str]:
        """Models some evaluation stage evaluates, in config order."""
        chosen = set(self.harness.models) | set(self.holmes.models)
        return [m for m in list(self.models) + list(self.merges) if m in chosen]

    # ---- targets -------------------------------------------------------------
    def targets(self, what: str) -> List[str]:
        """The files of target rule ``what``: merges, evaluations, tables, plots, pushes or all."""
        h, ho = self.harness, self.holmes
        if what == "merges":  # a merge whose weights are deleted: its record, which reads them once
            released = set(self.storage.released)
            out = [(paths.MERGE_RECORD if m in released else paths.MERGED_MODEL).format(model=m) for m in self.merges]
            return out + [paths.MERGES_TABLE]
        if what == "evaluations":
            out = [paths.HARNESS_JSON.format(model=m, task=t) for m in h.models for t in h.tasks]
            out += [paths.HARNESS_ITEMS.format(model=m, task=t) for m in h.models for t in h.tasks]
            out += [paths.HARNESS_SAMPLES.format(model=m, task=t) for m in h.models for t in h.samples_tasks]
            return out + [paths.HOLMES_SCORES.format(model=m) for m in ho.models]
        if what == "tables":
            return list(paths.TABLES.values()) if self.evaluated or self.searches else []
        if what == "plots":
            out = [f"{f['stem']}.png" for f in figures(self)]
            return out + [f"{paths.SEARCH_FIGURE.format(search=s)}.png" for s in self.searches]
        if what == "searches":
            files = (paths.SEARCH_TRIALS, paths.SEARCH_BEST, paths.SEARCH_JOURNAL)
            return [f.format(search=s) for s in self.searches for f in files]
        if what == "pushes":
            if not self.hub.pushing:
                return []
            out = [paths.PUSH_RECEIPT.format(model=m) for m in self.hub.repos]
            evaluated = set(self.evaluated)
            if self.hub.push["results"] and evaluated:
                out += [paths.PUSH_RESULTS_RECEIPT.format(model=m) for m in self.hub.repos if m in evaluated]
            return out
        if what == "all":
            targets = [name for name, r in RULES.items() if r.is_target and name != "all"]  # in table order
            return [p for t in targets for p in self.targets(t)]
        raise ValueError(f"unknown target {what!r}")

    # ---- job specs -----------------------------------------------------------
    def job(self, rule: str, **wildcards: str) -> JobSpec:
        """The spec of one job of ``rule`` (its builder in mergelab.plan.rules.RULES), built once."""
        return self._built(rule, wildcards)[0]

    def job_params(self, rule: str, **wildcards: str) -> Dict[str, Any]:
        """The rule's params of that job: Snakemake reads them one by one, so they are built once."""
        return self._built(rule, wildcards)[1]

    def _built(self, rule: str, wildcards: Dict[str, str]) -> Tuple[JobSpec, Dict[str, Any]]:
        key = (rule, tuple(sorted(wildcards.items())))
        if key not in self._jobs:
            spec = RULES[rule].build(self, **wildcards)
            self._jobs[key] = spec, spec.params(self.workdir)
        return self._jobs[key]

    def search(self, name: str) -> SearchPlan:
        if name not in self.searches:
            raise ValueError(f"{name!r} is not a search of this config")
        return self.searches[name]

    def merge_spec(self, model: str, estimate: bool = False) -> MergeSpec:
        """The merge ``model`` (a trial once its generation is proposed; ``estimate``: before too,
        for resource estimates, see Trials.spec)."""
        if model not in self.merges and self.trial(model):
            return self.trials.spec(model, estimate)
        if model not in self.merges:
            raise ValueError(f"{model!r} is not a merge of this config (see {paths.MERGES_TABLE})")
        return self.merges[model]


def load_experiment(
    cfg: Optional[dict],
    source: str,
    workdir: Optional[os.PathLike] = None,
    lm_eval_tasks: Optional[Callable[[], Optional[Dict[str, str]]]] = None,
) -> Experiment:
    """Validate ``cfg`` (as loaded from ``source``) and expand it into models, merges and evaluations.

    ``lm_eval_tasks`` returns lm-eval's task names (see tasks.lm_eval_index); it
    is called only when a task is not one of the local task folders'.
    """
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys (models, merges, ...)")
    workdir = Path(workdir or os.getcwd()).resolve()
    schema = load_schema()
    validate_schema(cfg, schema, source)
    given = cfg.get("merges") or []
    cfg = fill_defaults(cfg, schema)
    models = resolve_models(cfg["models"], source, workdir)
    merges = expand_recipes(cfg["merges"], given, models, source, workdir)

    def fail(key, msg):
        raise ConfigError(f"{source}: {key}: {msg}")

    from mergelab.plan.tasks import lm_eval_index

    names = list(models) + list(merges)
    dtypes = {name: model_dtype(name, models, merges) for name in names}
    evaluate = cfg["harness"]["tasks"] or cfg["holmes"]["activate"]
    evaluated = select_models(cfg["evaluation"]["models"], list(models), merges, fail) if evaluate else []
    harness = build_harness_plan(
        cfg,
        schema,
        evaluated,
        names,
        dtypes,
        {n: m.revision for n, m in models.items()},
        workdir,
        fail,
        lm_eval_tasks or lm_eval_index,
    )
    holmes = build_holmes_plan(cfg, evaluated, dtypes, workdir, fail)
    hub = build_hub_plan(cfg, merges, fail)
    if cfg["storage"]["keep_merges"] == "pushed" and merges and not hub.repos:
        fail("storage.keep_merges", "pushed deletes a merge's weights once pushed, but no merge is pushed (hub.push)")
    searches = build_searches(
        cfg, models, merges, harness, holmes, source, workdir, fail, lm_eval_tasks or lm_eval_index
    )
    storage = build_storage_plan(cfg["storage"]["keep_merges"], merges, hub.repos, searches, workdir)
    sanity = build_sanity_plan(
        cfg["sanity"], [m for m in names if m in set(harness.models) | set(holmes.models)], models, merges
    )
    trials = Trials(searches, models, merges, source, workdir)
    compute = ComputePlan(**cfg["compute"])
    stats = StatsPlan(**cfg["stats"])
    exp = Experiment(
        source, cfg, models, merges, harness, holmes, hub, storage, sanity, compute, stats, trials, workdir
    )
    return exp.with_best_trials()
