"""The evaluation plans: which models the harness and Holmes evaluate, with which settings.

Every (model, task) gets its fully resolved settings (mergelab.plan.jobs.HarnessSettings), which
become its job's params, so changing one task's setting reruns exactly that task's jobs; every
probed model its HolmesSettings.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mergelab.plan import paths
from mergelab.plan.errors import close_matches, did_you_mean
from mergelab.plan.holmes_sets import (
    BUILTIN_VERSIONS,
    DataError,
    datasets_of_version,
    find_datasets,
    read_probes,
    select,
    zip_datasets,
)
from mergelab.plan.jobs import HarnessSettings, HolmesSettings
from mergelab.plan.load import settings_defaults
from mergelab.plan.tasks import hub_tasks, scan_task_dirs

RESERVED_MODEL = "data"  # results/harness/data/ holds the harness_data receipts
BATCH_SIZE = re.compile(r"^(auto(:\d+)?|\d+)$")


def merge_settings(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if k in ("seeds", "model_args") and isinstance(v, dict):
            out[k] = {**out.get(k, {}), **v}
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass
class HarnessPlan:
    tasks: List[str]
    models: List[str]
    include_paths: List[str]  # the user's task folders (absolute); the workflow's own come first
    local_tasks: Dict[str, str]
    defaults: Dict[str, Any]
    settings: Dict[str, Any]
    model_settings: Dict[str, Dict[str, Any]]
    task_settings: Dict[str, Dict[str, Any]]
    model_dtypes: Dict[str, str] = field(default_factory=dict)
    model_revisions: Dict[str, Optional[str]] = field(default_factory=dict)
    jobs: str = "per_task"  # harness.jobs: per_task (rule harness_eval) or per_model (harness_eval_model)
    data_tasks: List[str] = field(default_factory=list)  # tasks reading from the Hub: a harness_data receipt each
    data_cache_dir: Optional[str] = None  # harness.data.cache_dir, absolute; None: the datasets cache

    def data_receipts(self, tasks: List[str]) -> List[str]:
        """The harness_data receipts a job of ``tasks`` waits for (none for local data)."""
        return [paths.HARNESS_DATA.format(task=t) for t in tasks if t in self.data_tasks]

    def _for_model(self, model: str) -> Dict[str, Any]:
        """The defaults, harness.settings, then every model_settings pattern ``model`` matches."""
        s = merge_settings(self.defaults, self.settings)
        for pattern, over in self.model_settings.items():
            if fnmatch.fnmatchcase(model, pattern):
                s = merge_settings(s, over)
        return s

    def settings_for(self, model: str, task: str) -> HarnessSettings:
        s = merge_settings(self._for_model(model), self.task_settings.get(task, {}))
        if s["dtype"] is None:
            s["dtype"] = self.model_dtypes.get(model, "auto")
        return HarnessSettings(**s, revision=self.model_revisions.get(model))

    def trusts_remote_code(self, model: str) -> bool:
        """harness.settings.trust_remote_code as it applies to ``model`` (model_settings included):
        Holmes and the sanity check load the model as the harness does."""
        return bool(self._for_model(model).get("trust_remote_code"))

    def model_outputs(self) -> Dict[str, List[str]]:
        """harness_eval_model's outputs: every task's JSON, per-item results (and samples where
        logged) of {model}."""
        out = {"json": [paths.HARNESS_JSON.format(model="{model}", task=t) for t in self.tasks]}
        out["per_item"] = [paths.HARNESS_ITEMS.format(model="{model}", task=t) for t in self.tasks]
        if self.samples_tasks:
            out["samples"] = [paths.HARNESS_SAMPLES.format(model="{model}", task=t) for t in self.samples_tasks]
        return out

    def task_groups(self, model: str) -> List[List[str]]:
        """The model's tasks in groups of identical resolved settings, in config order."""
        return settings_groups({task: self.settings_for(model, task) for task in self.tasks})

    @property
    def task_folders(self) -> List[str]:
        return [str(paths.WORKFLOW_TASKS)] + list(self.include_paths)

    def is_local(self, task: str) -> bool:
        return task in self.local_tasks

    @property
    def samples_tasks(self) -> List[str]:
        base = merge_settings(self.defaults, self.settings)
        return [t for t in self.tasks if merge_settings(base, self.task_settings.get(t, {}))["log_samples"]]


def settings_groups(settings: Dict[str, HarnessSettings]) -> List[List[str]]:
    """The tasks of ``settings`` (task -> its settings) in groups of identical settings, in its
    order: one lm-eval run each in a per_model job (tasks of a run share num_fewshot, limit, batch
    size...). Compared as their mappings' reprs, as groups always were (a job's groups are params)."""
    groups: Dict[str, List[str]] = {}
    for task, s in settings.items():
        groups.setdefault(repr(sorted(vars(s).items())), []).append(task)
    return list(groups.values())


def select_models(patterns: Optional[List[str]], parents: List[str], merges: Dict[str, Any], fail) -> List[str]:
    """Evaluated models, parents first, in config order."""
    everything = list(parents) + list(merges)
    if patterns is None:
        return everything
    chosen = set()
    for i, pat in enumerate(patterns):
        hits = [m for m in everything if fnmatch.fnmatchcase(m, pat)]
        hits += [mid for mid, spec in merges.items() if spec.recipe == pat]
        if not hits:
            options = everything + sorted({s.recipe for s in merges.values()})
            fail(f"evaluation.models[{i}]", f"{pat!r} matches no model, merge id or recipe{did_you_mean(pat, options)}")
        chosen.update(hits)
    return [m for m in everything if m in chosen]


def check_settings(s: Dict[str, Any], key: str, fail, allow_log_samples: bool = True) -> None:
    if "batch_size" in s and isinstance(s["batch_size"], str) and not BATCH_SIZE.match(s["batch_size"]):
        fail(f"{key}.batch_size", f"{s['batch_size']!r} is not a number, auto or auto:N")
    if isinstance(s.get("batch_size"), int) and s["batch_size"] < 1:
        fail(f"{key}.batch_size", f"must be >= 1, got {s['batch_size']}")
    limit = s.get("limit")
    if limit is not None and limit >= 1 and not float(limit).is_integer():
        fail(f"{key}.limit", f"a limit >= 1 counts documents and must be whole, got {limit}")
    if s.get("quantization") and s.get("backend") == "vllm":
        fail(f"{key}.quantization", "quantization applies to backend hf (bitsandbytes); vllm has its own (model_args)")
    if not allow_log_samples and "log_samples" in s:
        fail(f"{key}.log_samples", "set log_samples for every task (harness.settings) or per task (task_settings)")


def build_harness_plan(
    cfg: dict,
    schema: dict,
    evaluated: List[str],
    names: List[str],
    dtypes: Dict[str, str],
    revisions: Dict[str, Optional[str]],
    workdir: Path,
    fail,
    lm_eval_tasks: Callable[[], Optional[Dict[str, str]]],
) -> HarnessPlan:
    """``evaluated``: the models evaluation.models selects; ``names``: every model and merge."""
    h = cfg["harness"]
    include = []
    for i, p in enumerate(h["include_path"]):
        path = (workdir / p).resolve()
        if not path.is_dir():
            fail(f"harness.include_path[{i}]", f"folder does not exist: {p}")
        include.append(str(path))
    local = scan_task_dirs([paths.WORKFLOW_TASKS] + include)

    index = None
    unknown = [t for t in h["tasks"] if t not in local]
    if unknown:
        index = lm_eval_tasks()
    if index is not None:
        for t in unknown:
            if t not in index:
                i = h["tasks"].index(t)
                near = close_matches(t, list(local) + list(index))
                fail(
                    f"harness.tasks[{i}]",
                    f"unknown lm-eval task {t!r}"
                    + (f"; did you mean {', '.join(near)}?" if near else " (not a task, group or tag lm-eval knows)"),
                )

    check_settings(h["settings"], "harness.settings", fail)
    for pat, over in h["model_settings"].items():
        check_settings(over, f"harness.model_settings.{pat}", fail, allow_log_samples=False)
    for task, over in h["task_settings"].items():
        if task not in h["tasks"]:
            fail(f"harness.task_settings.{task}", f"{task!r} is not in harness.tasks")
        check_settings(over, f"harness.task_settings.{task}", fail)

    for pat in h["model_settings"]:
        if not any(fnmatch.fnmatchcase(m, pat) for m in names):
            fail(f"harness.model_settings.{pat}", f"{pat!r} matches no model or merge")
    if h["tasks"] and RESERVED_MODEL in evaluated:
        fail(
            f"models.{RESERVED_MODEL}",
            f"{paths.HARNESS_DATA.format(task='<task>')} holds the task data receipts: "
            f"rename the model (a model evaluated by the harness cannot be named {RESERVED_MODEL!r})",
        )
    cache_dir = h["data"]["cache_dir"]

    plan = HarnessPlan(
        tasks=list(h["tasks"]),
        models=list(evaluated) if h["tasks"] else [],
        include_paths=include,
        local_tasks=local,
        defaults=settings_defaults(schema),
        settings=h["settings"],
        model_settings=h["model_settings"],
        task_settings=h["task_settings"],
        model_dtypes=dtypes,
        model_revisions=revisions,
        jobs=h["jobs"],
        data_tasks=hub_tasks(h["tasks"], [paths.WORKFLOW_TASKS] + include),
        data_cache_dir=str((workdir / Path(cache_dir).expanduser()).resolve()) if cache_dir else None,
    )
    s = merge_settings(plan.defaults, plan.settings)
    check_settings(s, "harness.settings", fail)
    return plan


@dataclass
class HolmesPlan:
    active: bool
    version: str
    root: str  # absolute
    archive: Optional[str]
    url: Optional[str]
    datasets: Optional[List[str]]  # names; for a version of the user's own fetched from a url: holmes.datasets
    models: List[str]
    settings: HolmesSettings  # dtype as holmes.dtype gives it (None: each model's own)
    model_dtypes: Dict[str, str] = field(default_factory=dict)
    probes: Optional[str] = None  # the user's competence mapping (holmes.data.probes), absolute

    @property
    def data_dir(self) -> str:
        return str(Path(self.root) / self.version)

    @property
    def manifest(self) -> str:
        return paths.HOLMES_MANIFEST.format(version=self.version)

    def settings_for(self, model: str) -> HolmesSettings:
        """The probing settings of one model: holmes.dtype, else the model's own dtype."""
        return replace(self.settings, dtype=self.settings.dtype or self.model_dtypes.get(model, "auto"))


def holmes_datasets(h: dict, root: Path, archive: Optional[str], fail) -> Optional[List[str]]:
    """The datasets of the Holmes version, known before any job, or None when only the job can
    know them (a version of the user's own downloaded from holmes.data.url).

    A built-in version has the datasets workflow/holmes/probes.csv lists for it, plus any
    other dataset folder in <root>/<version>/ or its archive (not for demo, which the workflow
    writes, nor with a url, whose archive only the job sees). A version of the user's own has
    the dataset folders of <root>/<version>/, else those of its archive (holmes.data.archive,
    else <root>/<version>.zip). The list depends on the config and the data only, never on
    whether an earlier run unpacked the archive, so a second run reruns nothing."""
    version, url = h["version"], h["data"]["url"]
    zip_path = Path(archive) if archive else root / f"{version}.zip"
    key = "holmes.data.archive" if archive else "holmes.version"

    def local() -> Optional[List[str]]:
        found = find_datasets(root / version)
        return found if found else (zip_datasets(zip_path) if zip_path.is_file() else None)

    if version in BUILTIN_VERSIONS:
        known = datasets_of_version(version)
        if version == "demo" or url:
            return known
        try:
            found = local() or []
        except DataError:  # a broken archive: the holmes_data job says what to do
            found = []
        return known + [n for n in found if n not in known]
    if url and not archive:
        return None
    try:
        found = local()
    except DataError as e:
        fail(key, str(e))
    if found is None:
        shown = Path(h["data"]["root"]) / version
        fail(
            "holmes.version",
            f"{version!r} is not a built-in version ({', '.join(BUILTIN_VERSIONS)}) and no datasets of it are in "
            f"{shown}/ (<dataset>/config-none.yaml + samples.csv), {shown}.zip or holmes.data.url"
            f"{did_you_mean(version, BUILTIN_VERSIONS)}",
        )
    if not found:
        fail(key, f"{zip_path} holds no dataset folder (<dataset>/config-none.yaml, samples.csv)")
    return found


def build_holmes_plan(cfg: dict, evaluated: List[str], dtypes: Dict[str, str], workdir: Path, fail) -> HolmesPlan:

    h = cfg["holmes"]
    archive = h["data"]["archive"]
    if archive is not None:
        archive = str((workdir / archive).resolve())
        if not Path(archive).is_file():
            fail("holmes.data.archive", f"file not found: {h['data']['archive']}")
    root = (workdir / h["data"]["root"]).resolve()
    names: Optional[List[str]] = []  # a version of the user's own that is not probed: not looked for
    probes = None
    if h["activate"] or h["version"] in BUILTIN_VERSIONS:
        known = holmes_datasets(h, root, archive, fail)
        names = known if known is not None or h["datasets"] is None else list(h["datasets"])
        if known is not None and h["datasets"] is not None:
            names = select(known, h["datasets"])
            for i, pat in enumerate(h["datasets"]):
                if not select(known, [pat]):
                    fail(
                        f"holmes.datasets[{i}]", f"{pat!r} matches no {h['version']} dataset{did_you_mean(pat, known)}"
                    )
    if h["activate"] and h["data"]["probes"] is not None:
        probes = str((workdir / h["data"]["probes"]).resolve())
        if not Path(probes).is_file():
            fail("holmes.data.probes", f"file not found: {h['data']['probes']}")
        try:
            read_probes(Path(probes))
        except DataError as e:
            fail("holmes.data.probes", str(e))
    models = list(evaluated) if h["activate"] else []
    settings = HolmesSettings(
        seeds=h["seeds"],
        objective=h["objective"],
        batch_size=h["batch_size"],
        dtype=h["dtype"],
        max_length=h["max_length"],
        features=h["features"],  # absent from the params when full: campaigns from before the key rerun nothing
    )
    return HolmesPlan(
        active=h["activate"],
        version=h["version"],
        root=str(root),
        archive=archive,
        url=h["data"]["url"],
        datasets=names,
        models=models,
        settings=settings,
        model_dtypes={name: dtypes[name] for name in models},
        probes=probes,
    )
