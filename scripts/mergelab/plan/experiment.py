"""The experiment: every model, merge and evaluation of a campaign, and the spec of every job.

``load_experiment`` validates a config and expands it; the Experiment is the one
catalogue the DAG, the jobs' params, the tables and the figures are built from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from mergelab.plan import paths
from mergelab.plan.errors import ConfigError
from mergelab.plan.evaluation import HarnessPlan, HolmesPlan, build_harness_plan, build_holmes_plan, select_models
from mergelab.plan.hub import HubPlan, build_hub_plan
from mergelab.plan.jobs import (
    FetchJob,
    HarnessDataJob,
    HarnessJob,
    HarnessModelJob,
    HolmesDataJob,
    HolmesJob,
    JobSpec,
    MergeJob,
    MergesTableJob,
    OrganizeJob,
    PlotJob,
    PushJob,
    PushResultsJob,
    SanityJob,
    SearchPlotJob,
    SearchProbeJob,
    SearchProposeJob,
    SearchSummaryJob,
)
from mergelab.plan.load import fill_defaults, load_schema, validate_schema
from mergelab.plan.merges import expand_recipes
from mergelab.plan.models import MergeSpec, ModelSpec, merge_model_spec, merges_tsv, model_dtype, resolve_models
from mergelab.plan.search import SearchPlan, build_search_plans, read_best, read_proposals, trial_spec


@dataclass(eq=False)
class Experiment:
    source: str
    config: dict
    models: Dict[str, ModelSpec]
    merges: Dict[str, MergeSpec]
    harness: HarnessPlan
    holmes: HolmesPlan
    hub: HubPlan
    workdir: Path = field(default_factory=Path.cwd)
    searches: Dict[str, SearchPlan] = field(default_factory=dict)
    _jobs: Dict[tuple, Tuple[JobSpec, Dict[str, Any]]] = field(default_factory=dict, repr=False)
    _trials: Dict[str, Tuple[int, MergeSpec]] = field(default_factory=dict, repr=False)
    best: Dict[str, List[str]] = field(default_factory=dict)  # search -> its best trials, once known
    _evaluated: Tuple[List[str], List[str]] = field(default_factory=lambda: ([], []), repr=False)
    _best_read: Dict[str, int] = field(default_factory=dict, repr=False)  # search -> mtime of the best.yaml read

    def __post_init__(self):
        self._evaluated = (list(self.harness.models), list(self.holmes.models))
        for name in self.searches:
            if (self.workdir / paths.SEARCH_BEST.format(search=name)).is_file():
                self.include_best(name)

    # ---- the catalogue -------------------------------------------------------
    @property
    def merge_ids(self) -> List[str]:
        return list(self.merges)

    # ---- merge search (mergelab.plan.search) ----------------------------------
    def trial(self, name: str) -> Optional[Tuple[SearchPlan, int]]:
        """(the search, the trial number) when ``name`` is a trial's merge id, else None."""
        search, sep, number = name.rpartition("_t")
        plan = self.searches.get(search) if sep and number.isdigit() else None
        if plan is None or plan.trial_id(int(number)) != name or int(number) >= plan.trials:
            return None
        return plan, int(number)

    def is_merge(self, name: str) -> bool:
        """A merge of the config, or a search's trial."""
        return name in self.merges or self.trial(name) is not None

    def proposals_file(self, name: str) -> str:
        """The proposals.json that gives trial ``name`` its parameters."""
        plan, number = self.trial(name)
        return plan.proposals(plan.generation_of(number))

    def _trial_spec(self, name: str) -> MergeSpec:
        """A trial's merge, from its generation's proposals (read again when they change)."""
        plan, number = self.trial(name)
        path = self.workdir / self.proposals_file(name)
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise ValueError(f"trial {name} of search {plan.name} is not proposed yet ({path} is missing)") from None
        cached = self._trials.get(name)
        if cached and cached[0] == stamp:
            return cached[1]
        t = read_proposals(path).get(number)
        if t is None:
            raise ValueError(
                f"{path} lacks trial {number}: delete results/search/{plan.name}/ to start the search again"
            )
        spec = trial_spec(plan, number, t["method"], t["values"], self._readable, self.source, self.workdir)
        self._trials[name] = stamp, spec
        return spec

    @cached_property
    def _readable(self) -> Dict[str, ModelSpec]:
        """What a search's recipe may name: the parents, and the merges as models."""
        return {**self.models, **{mid: merge_model_spec(spec, self.workdir) for mid, spec in self.merges.items()}}

    def include_best(self, search: str) -> List[str]:
        """Read the search's best.yaml: its trials join the evaluated models (the full tasks,
        Holmes), the tables and the figures like any merge. Replaces what an earlier best.yaml gave
        (read again when it changed: a search rerun in this run)."""
        path = self.workdir / paths.SEARCH_BEST.format(search=search)
        stamp = path.stat().st_mtime_ns
        if self._best_read.get(search) == stamp:
            return self.best[search]
        self._best_read[search] = stamp
        self.best[search] = [m for m in read_best(path) if self.trial(m)]
        best = [m for ms in self.best.values() for m in ms]
        harness, holmes = self._evaluated
        self.harness.models = harness + [m for m in best if m not in harness] if self.harness.tasks else []
        self.holmes.models = holmes + [m for m in best if m not in holmes] if self.holmes.active else []
        self._jobs.clear()
        return self.best[search]

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
    def keep_merges(self) -> str:
        """storage.keep_merges: all, pushed or none."""
        return self.config["storage"]["keep_merges"]

    @cached_property
    def read_by_merges(self) -> Dict[str, List[str]]:
        """merge id -> the merges of the config that read it (merges of merges)."""
        out: Dict[str, List[str]] = {}
        for mid, spec in self.merges.items():
            for name in spec.inputs:
                if name in self.merges:
                    out.setdefault(name, []).append(mid)
        return out

    def _on_disk(self, template: str, name: str) -> bool:
        return (self.workdir / template.format(model=name)).exists()

    @cached_property
    def released(self) -> List[str]:
        """The merges whose weights are deleted once every job that reads them has finished
        (storage.keep_merges: the pushed ones with `pushed`, every one with `none`), but for a
        merge that another merge reads, which keeps them; and a merge whose weights are gone
        already (its record is there, its directory is not), whatever keep_merges says now.
        Their card, mergekit config and checksums stay (paths.MERGE_RECORD)."""
        keep = self.keep_merges
        out = []
        for m in self.merges:
            by_config = keep == "none" or (keep == "pushed" and m in self.hub.repos)
            if by_config and m not in self.read_by_merges:
                out.append(m)
            elif self._on_disk(paths.MERGE_RECORD, m) and not self._on_disk(paths.MERGED_MODEL, m):
                out.append(m)
        # a search's trials, unless it keeps them: deleted once their dev evaluation is done
        return out + [t for plan in self.searches.values() if not plan.keep_trials for t in plan.trial_ids]

    def check_released_reads(self) -> Optional[str]:
        """Why a merge still to be made cannot be, when it reads a merge whose weights were
        deleted: making them again for it would rerun every evaluation of that merge."""
        for m in self.released:
            for child in self.read_by_merges.get(m, []):
                if not self._on_disk(paths.MERGED_MODEL, child) and not self._on_disk(paths.MERGE_RECORD, child):
                    made = paths.MERGED_MODEL.format(model=m)
                    return (
                        f"merge {child} reads {m}, whose weights were deleted (storage.keep_merges); "
                        f"bring them back first with `snakemake {made}` (nothing that read them reruns), then run again"
                    )
        return None

    @property
    def sanity(self) -> Dict[str, Any]:
        """The config's sanity section (activate, on_fail, max_ppl_ratio)."""
        return self.config["sanity"]

    @cached_property
    def checked(self) -> List[str]:
        """The models with a sanity check: every evaluated merge, and what each checked merge
        reads (its parents' checks are its reference), down to the parents; none when off."""
        if not self.sanity["activate"]:
            return []
        todo = [m for m in self.evaluated if m in self.merges]
        seen: List[str] = []
        while todo:
            m = todo.pop(0)
            if m in seen:
                continue
            seen.append(m)
            if m in self.merges:
                todo += self.merges[m].inputs
        return [m for m in list(self.models) + list(self.merges) if m in seen]

    def check_input(self, name: str) -> List[str]:
        """The check an evaluation job of ``name`` waits for: a merge's, when checks are on."""
        return [paths.CHECK.format(model=name)] if name in self.merges and name in self.checked else []

    @property
    def evaluated(self) -> List[str]:
        """Models some evaluation stage evaluates, in config order."""
        chosen = set(self.harness.models) | set(self.holmes.models)
        return [m for m in list(self.models) + list(self.merges) if m in chosen]

    def merge_records(self) -> List[Dict[str, Any]]:
        """results/merges.tsv's rows: every merge, then every search's trials proposed so far
        (with their search and trial number)."""
        out = [spec.record() for spec in self.merges.values()]
        for plan in self.searches.values():
            for number, tid in enumerate(plan.trial_ids):
                if (self.workdir / self.proposals_file(tid)).is_file():
                    out.append({**self.merge_spec(tid).record(), "search": plan.name, "trial": number})
        return out

    def merges_table(self) -> str:
        return merges_tsv(self.merge_records())

    def catalogue(self) -> Dict[str, Any]:
        """What the tables, the figures and provenance.json know about the campaign."""
        models = {name: m.describe(self.role(name)) for name, m in self.models.items()}
        models.update({mid: spec.describe() for mid, spec in self.merges.items()})
        for search, best in self.best.items():  # a search's best trials, evaluated like any merge
            models.update({m: {**self.merge_spec(m).describe(), "search": search} for m in best})
        for mid in self.merges:
            if self.reads_merges(mid):  # provenance.json: the tree down to the parents
                models[mid]["lineage"] = self.lineage(mid)
        h, ho = self.harness, self.holmes
        return {
            "model_order": list(models),
            "models": models,
            "harness": {
                "tasks": h.tasks,
                "settings": h.settings,
                "model_settings": h.model_settings,
                "task_settings": h.task_settings,
            },
            "holmes": {"active": ho.active, "version": ho.version, "datasets": ho.datasets, "settings": ho.settings},
            "stats": dict(self.config["stats"]),
        }

    def result_files(self) -> Dict[str, Any]:
        """The evaluation results the tables read (and the user's competence mapping, if any)."""
        files = {
            "harness": {
                m: {t: paths.HARNESS_JSON.format(model=m, task=t) for t in self.harness.tasks}
                for m in self.harness.models
            },
            "harness_items": {
                m: {t: paths.HARNESS_ITEMS.format(model=m, task=t) for t in self.harness.tasks}
                for m in self.harness.models
            },
            "holmes": {m: paths.HOLMES_SCORES.format(model=m) for m in self.holmes.models},
            "holmes_manifest": self.holmes.manifest if self.holmes.models else "",
        }
        if self.holmes.models and self.holmes.probes:
            files["holmes_probes"] = self.holmes.probes
        checks = {m: paths.CHECK.format(model=m) for m in self.evaluated if self.check_input(m)}
        if checks:  # only when on: a campaign without checks keeps its params
            files["checks"] = checks
        return files

    # ---- targets -------------------------------------------------------------
    def targets(self, what: str) -> List[str]:
        """The files of target rule ``what``: merges, evaluations, tables, plots, pushes or all."""
        from mergelab import outputs

        h, ho = self.harness, self.holmes
        if what == "merges":  # a merge whose weights are deleted: its record, which reads them once
            released = set(self.released)
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
            out = [f"{f['stem']}.png" for f in outputs.figures(self)]
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
            targets = ("merges", "searches", "evaluations", "tables", "plots", "pushes")
            return [p for t in targets for p in self.targets(t)]
        raise ValueError(f"unknown target {what!r}")

    # ---- job specs -----------------------------------------------------------
    def job(self, rule: str, **wildcards: str) -> JobSpec:
        """The spec of one job of ``rule`` (JOB_BUILDERS), built once."""
        return self._built(rule, wildcards)[0]

    def job_params(self, rule: str, **wildcards: str) -> Dict[str, Any]:
        """The rule's params of that job: Snakemake reads them one by one, so they are built once."""
        return self._built(rule, wildcards)[1]

    def _built(self, rule: str, wildcards: Dict[str, str]) -> Tuple[JobSpec, Dict[str, Any]]:
        key = (rule, tuple(sorted(wildcards.items())))
        if key not in self._jobs:
            spec = JOB_BUILDERS[rule](self, **wildcards)
            self._jobs[key] = spec, spec.params(self.workdir)
        return self._jobs[key]

    def merge_job(self, model: str) -> MergeJob:
        spec = self.merge_spec(model)
        parents = [self.models[m] for m in spec.inputs if m in self.models]
        card = {
            "recipe": spec.recipe,
            "method": spec.method,
            "seed": spec.seed,
            "inputs": spec.inputs + spec.path_inputs,
            "parameters": spec.params,
            "hub_parents": self.hub_ancestors(model),
        }
        if self.reads_merges(model):  # a merge of merges: its card shows the tree
            card["lineage"] = self.lineage(model)
        return MergeJob(
            mergekit_config=spec.mergekit_config,
            seed=spec.seed,
            card=card,
            hub_receipts={m.mergekit_ref: m.receipt for m in parents if m.receipt},
        )

    def search(self, name: str) -> SearchPlan:
        if name not in self.searches:
            raise ValueError(f"{name!r} is not a search of this config")
        return self.searches[name]

    def search_propose_job(self, search: str, generation: str) -> SearchProposeJob:
        plan, g = self.search(search), int(generation)
        if not 0 <= g < plan.generations:
            raise ValueError(f"search {search} has generations 0 to {plan.generations - 1}, not {g}")
        numbers = plan.numbers(g)
        told = plan.numbers(g - 1) if g else []
        return SearchProposeJob(
            search=plan.spec(), generation=g, numbers=numbers, models=[plan.trial_id(n) for n in numbers], told=told
        )

    def search_eval_job(self, search: str, model: str) -> HarnessModelJob:
        """A trial's dev evaluation: the objectives' tasks with the search's limit, after one model load."""
        found = self.trial(model)
        if found is None or found[0].name != search or not found[0].tasks:
            raise ValueError(f"{model!r} is not a trial of search {search!r} evaluated on harness tasks")
        plan, h = found[0], self.harness
        settings = {t: {**h.settings_for(model, t), "limit": plan.limit, "log_samples": False} for t in plan.tasks}
        groups: Dict[str, List[str]] = {}
        for t in plan.tasks:
            groups.setdefault(repr(sorted(settings[t].items())), []).append(t)
        return HarnessModelJob(
            model=model,
            model_path=str(self.workdir / paths.MERGED_MODEL.format(model=model)),  # the trial's own weights
            receipt=None,
            tasks=plan.tasks,
            groups=list(groups.values()),
            settings=settings,
            include_paths=h.include_paths,
            include_defaults=not all(h.is_local(t) for t in plan.tasks),
            local_tasks=[t for t in plan.tasks if h.is_local(t)],
        )

    def search_probe_job(self, search: str, model: str) -> SearchProbeJob:
        """A trial's dev probing: Holmes on the datasets of the objectives' competences (all for overall)."""
        found = self.trial(model)
        if found is None or found[0].name != search or not found[0].competences:
            raise ValueError(f"{model!r} is not a trial of search {search!r} probed by Holmes")
        ho = self.holmes
        return SearchProbeJob(
            model=model,
            model_path=str(self.workdir / paths.MERGED_MODEL.format(model=model)),
            receipt=None,
            data_dir=ho.data_dir,
            datasets=ho.datasets,
            settings=ho.settings_for(model),
            competences=found[0].competences,
        )

    def search_summary_job(self, search: str) -> SearchSummaryJob:
        plan = self.search(search)
        recipe = {k: v for k, v in plan.recipe.items() if k not in ("name", "methods", "method_parameters")}
        return SearchSummaryJob(search=plan.spec(), told=plan.numbers(plan.generations - 1), recipe=recipe)

    def search_plot_job(self, search: str) -> SearchPlotJob:
        return SearchPlotJob(search=self.search(search).spec())

    def merges_table_job(self) -> MergesTableJob:
        return MergesTableJob(merges=self.merge_records())

    def harness_job(self, model: str, task: str) -> HarnessJob:
        if model not in self.harness.models or task not in self.harness.tasks:
            raise ValueError(f"({model}, {task}) is not an evaluation of this config")
        return HarnessJob(
            model=model,
            model_path=self.model_path(model),
            receipt=self.receipt(model),
            task=task,
            settings=self.harness.settings_for(model, task),
            include_paths=self.harness.include_paths,
            include_defaults=not self.harness.is_local(task),
        )

    def harness_model_job(self, model: str) -> HarnessModelJob:
        h = self.harness
        if model not in h.models:
            raise ValueError(f"{model!r} is not evaluated by the harness in this config")
        return HarnessModelJob(
            model=model,
            model_path=self.model_path(model),
            receipt=self.receipt(model),
            tasks=list(h.tasks),
            groups=h.task_groups(model),
            settings={t: h.settings_for(model, t) for t in h.tasks},
            include_paths=h.include_paths,
            include_defaults=not all(h.is_local(t) for t in h.tasks),
            local_tasks=[t for t in h.tasks if h.is_local(t)],
        )

    def harness_data_job(self, task: str) -> HarnessDataJob:
        h = self.harness
        if task not in h.data_tasks:
            raise ValueError(f"{task!r} is no harness task of this config that reads from the Hub")
        return HarnessDataJob(
            task=task,
            include_paths=h.include_paths,
            include_defaults=not h.is_local(task),
            cache_dir=h.data_cache_dir,
        )

    def holmes_job(self, model: str) -> HolmesJob:
        if model not in self.holmes.models:
            raise ValueError(f"{model!r} is not probed by this config")
        ho = self.holmes
        return HolmesJob(
            model=model,
            model_path=self.model_path(model),
            receipt=self.receipt(model),
            data_dir=ho.data_dir,
            datasets=ho.datasets,
            settings=ho.settings_for(model),
        )

    def sanity_job(self, model: str) -> SanityJob:
        if model not in self.checked:
            raise ValueError(f"{model!r} has no sanity check in this config (sanity.activate)")
        inputs = self.merges[model].inputs if model in self.merges else []
        return SanityJob(
            model=model,
            model_path=self.model_path(model),
            receipt=self.receipt(model),
            parents=[paths.CHECK.format(model=m) for m in inputs],
            on_fail=self.sanity["on_fail"],
            max_ppl_ratio=float(self.sanity["max_ppl_ratio"]),
        )

    def holmes_data_job(self) -> HolmesDataJob:
        ho = self.holmes
        return HolmesDataJob(version=ho.version, root=ho.root, archive=ho.archive, url=ho.url, datasets=ho.datasets)

    def fetch_job(self, model: str) -> FetchJob:
        from mergelab.hub import allow_patterns

        m = self.models.get(model)
        if m is None or m.kind != "hub":
            raise ValueError(f"{model!r} is not a hub model of this config")
        fetch, cache = self.hub.fetch, self.hub.fetch["cache_dir"]
        return FetchJob(
            repo_id=m.location,
            revision=m.revision,
            patterns=allow_patterns(fetch["allow_patterns"], fetch["allow_pickles"]),
            cache_dir=str((self.workdir / os.path.expanduser(cache)).resolve()) if cache else None,
            retries=self.hub.retries,
            retry_wait=self.hub.retry_wait,
        )

    def push_job(self, model: str) -> PushJob:
        return PushJob(
            repo_id=self._repo(model),
            private=self.hub.push["private"],
            message=f"mergelab: {model}",
            retries=self.hub.retries,
            retry_wait=self.hub.retry_wait,
        )

    def push_results_job(self, model: str) -> PushResultsJob:
        return PushResultsJob(
            repo_id=self._repo(model), model=model, retries=self.hub.retries, retry_wait=self.hub.retry_wait
        )

    def organize_job(self) -> OrganizeJob:
        return OrganizeJob(catalogue=self.catalogue(), files=self.result_files())

    def plot_job(self) -> PlotJob:
        from mergelab import outputs

        return PlotJob(catalogue=self.catalogue(), figures=outputs.figures(self))

    def merge_spec(self, model: str, estimate: bool = False) -> MergeSpec:
        """The merge ``model`` (a trial once its generation is proposed). ``estimate``: for a trial
        not proposed yet, its search's first method at the low end of its space, which reads the
        same models (resource estimates only)."""
        if model not in self.merges and self.trial(model):
            plan, _ = self.trial(model)
            if estimate and not (self.workdir / self.proposals_file(model)).is_file():
                return plan.stand_in
            return self._trial_spec(model)
        if model not in self.merges:
            raise ValueError(f"{model!r} is not a merge of this config (see {paths.MERGES_TABLE})")
        return self.merges[model]

    def _repo(self, model: str) -> str:
        if model not in self.hub.repos:
            raise ValueError(f"{model!r} is not a merge pushed by this config")
        return self.hub.repos[model]


JOB_BUILDERS: Dict[str, Callable[..., JobSpec]] = {
    "merge": Experiment.merge_job,
    "merges_table": Experiment.merges_table_job,
    "harness_eval": Experiment.harness_job,
    "harness_eval_model": Experiment.harness_model_job,
    "harness_data": Experiment.harness_data_job,
    "holmes_eval": Experiment.holmes_job,
    "holmes_data": Experiment.holmes_data_job,
    "sanity_check": Experiment.sanity_job,
    "fetch": Experiment.fetch_job,
    "push": Experiment.push_job,
    "push_results": Experiment.push_results_job,
    "organize": Experiment.organize_job,
    "plot": Experiment.plot_job,
    "search_propose": Experiment.search_propose_job,
    "search_eval": Experiment.search_eval_job,
    "search_probe": Experiment.search_probe_job,
    "search_summary": Experiment.search_summary_job,
    "search_plot": Experiment.search_plot_job,
}


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
    searches = _searches(cfg, models, merges, harness, holmes, source, workdir, fail, lm_eval_tasks or lm_eval_index)
    return Experiment(source, cfg, models, merges, harness, holmes, hub, workdir=workdir, searches=searches)


def _searches(
    cfg, models, merges, harness: HarnessPlan, holmes: HolmesPlan, source, workdir, fail, lm_eval_tasks
) -> Dict[str, SearchPlan]:
    """The config's searches; their objectives' tasks are checked as harness.tasks are, and
    those reading from the Hub get their data once, by harness_data, as harness tasks do; their
    competences are Holmes' (workflow/holmes/probes.csv, holmes.data.probes) or overall."""
    if not cfg["search"]:
        return {}
    from mergelab.plan.errors import close_matches, did_you_mean
    from mergelab.plan.evaluation import check_settings
    from mergelab.plan.tasks import hub_tasks

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
    import csv

    from mergelab.holmes_data import METADATA

    files = [str(METADATA)] + ([probes] if probes else [])
    found: List[str] = []
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            found += [(r.get("competence") or "").strip() for r in csv.DictReader(fh)]
    return sorted({c for c in found if c and c != "unknown"}) + ["overall"]
