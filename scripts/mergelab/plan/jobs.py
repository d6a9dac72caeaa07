"""The typed job specs: what every job gets, built once while the DAG is built.

Each spec's fields are its rule's params, one named value each, so the rule says
what its job gets (``params: model=..., task=..., settings=...``), and the job
reads them back with the same class (``HarnessJob.from_params(snakemake.params)``).
Values are plain builtins with their mappings' keys sorted, so that Snakemake's
params check sees a change only where a value changed, and paths under the
working directory travel as ``{workdir}/...`` (mergelab.plan.paths.portable),
so that a finished campaign moved to another folder reruns nothing.

A field may hold a typed payload (``Payload``: a job's settings, the catalogue),
which travels as the plain mapping of its fields and comes back typed, so that
the job reads ``job.settings.batch_size`` while the params are what they were
when the field was a plain mapping.

This module imports only the standard library: jobs import it.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Union

from mergelab.plan.paths import localize, portable


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order, tuples as lists and payloads as their
    mappings (Payload.record)."""
    if isinstance(value, Payload):
        return value.record()
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


class Unrecorded:
    """A param value that Snakemake does not record, so that it never decides a rerun.

    Snakemake reruns a job whose params changed, comparing the values it recorded, and it records
    only builtin values (int, str, list, ...). Two kinds of value are passed as this: version 1 of
    every rule (mergelab.plan.rules), and the default of a spec field added after campaigns had
    finished without it (``added_field``), which is what those campaigns computed with. So adding
    either reran nothing; any other value (version 2, a setting the user changed) is recorded."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"Unrecorded({self.value!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Unrecorded) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("unrecorded", repr(self.value)))


FIRST_VERSION = Unrecorded(1)


def added_field(default: Any):
    """A spec field added after campaigns finished without it: its default, what they computed
    with, is passed Unrecorded; another value is recorded (and reruns the job)."""
    return field(default=default, metadata={"unrecorded_default": True})


def omitted_default(default: Any):
    """A payload key added after campaigns finished without it: absent from the payload at its
    default (what they computed with), so that their params stay as they were; another value is
    there (and reruns the job). A spec field's counterpart is ``added_field``."""
    factory = (lambda: copy.deepcopy(default)) if isinstance(default, (dict, list)) else None
    meta = {"omitted_default": True, "default": default}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


@dataclass(frozen=True)
class Payload:
    """Base of a typed value that a spec field holds (a job's settings, the catalogue): it travels
    in params as the mapping of its fields (``record``), canonical and portable like any value,
    and the job gets it back typed (``from_record``; the field is a ``payload_field``)."""

    def record(self) -> Dict[str, Any]:
        """field -> canonical value, in sorted order; an ``omitted_default`` field at its default
        is absent."""
        out = {}
        for f in sorted(fields(self), key=lambda f: f.name):
            value = getattr(self, f.name)
            if not (f.metadata.get("omitted_default") and value == f.metadata["default"]):
                out[f.name] = canonical(value)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Payload":
        """The payload of a mapping ``record`` gave; an omitted key takes its default."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in record if k not in names]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [n for n in required if n not in record]
        if unknown or missing:
            what = f"has no field {unknown[0]!r}" if unknown else f"lacks {missing[0]!r}"
            raise TypeError(f"the mapping of a {cls.__name__} {what} (fields: {', '.join(names)})")
        return cls(**record)


def payload_field(payload: type, per_key: bool = False):
    """A spec field holding a ``payload`` (per_key: a mapping of keys to payloads), which
    ``from_params`` builds back from its mapping."""
    return field(metadata={"payload": payload, "per_key": per_key})


def _typed(f, value: Any) -> Any:
    """A param value as its field holds it: a payload_field's payload(s) from their mapping(s)."""
    payload = f.metadata.get("payload")
    if payload is None or isinstance(value, Payload):
        return value
    if f.metadata["per_key"]:
        return {k: v if isinstance(v, Payload) else payload.from_record(v) for k, v in value.items()}
    return payload.from_record(value)


@dataclass(frozen=True)
class JobSpec:
    """Base of the specs: to named params (in the DAG) and back (in the job)."""

    @classmethod
    def names(cls) -> List[str]:
        return [f.name for f in fields(cls)]

    def params(self, workdir) -> Dict[str, Any]:
        """The rule's params: field name -> portable, canonical value."""
        out = {}
        for f in fields(self):
            value = portable(canonical(getattr(self, f.name)), workdir)
            out[f.name] = Unrecorded(value) if f.metadata.get("unrecorded_default") and value == f.default else value
        return out

    @classmethod
    def from_params(cls, params, workdir=None):
        """The spec of a running job from its params (Snakemake's or a mapping), paths made
        absolute against ``workdir`` (default: the job's working directory)."""
        values = {}
        for f in fields(cls):
            try:
                value = params[f.name] if isinstance(params, Mapping) else getattr(params, f.name)
            except (KeyError, AttributeError):
                raise TypeError(f"the rule's params lack {f.name!r}, a field of {cls.__name__}") from None
            values[f.name] = _typed(f, localize(value.value if isinstance(value, Unrecorded) else value, workdir))
        return cls(**values)


# --------------------------------------------------------------------------- merge stage


@dataclass(frozen=True)
class MergeJob(JobSpec):
    mergekit_config: Dict[str, Any]  # mergekit's (or mergekit-moe's) config; models named by directory or hub id
    seed: int  # mergekit's random_seed
    card: Dict[str, Any]  # what the model card records: recipe, method, seed, inputs, parameters, hub_parents
    hub_receipts: Dict[str, str]  # a hub parent's reference in the config -> its fetch receipt (local snapshot)


@dataclass(frozen=True)
class MergesTableJob(JobSpec):
    merges: List[Dict[str, Any]]  # one record per merge (MergeSpec.record)


# --------------------------------------------------------------------------- evaluation stages


@dataclass(frozen=True)
class HarnessSettings(Payload):
    """The resolved lm-eval settings of one (model, task): the schema's defaults ($defs.settings),
    harness.settings, every harness.model_settings pattern the model matches, then the task's
    harness.task_settings (mergelab.plan.evaluation.HarnessPlan.settings_for). One field per key of
    $defs.settings, plus the model's revision."""

    num_fewshot: Optional[int]  # None: the task's own
    limit: Optional[float]  # documents per task (a fraction when < 1); None: all
    batch_size: Union[int, str]  # a number, auto or auto:N
    max_batch_size: int
    dtype: str  # the setting, else the model's own dtype (auto: as its config says)
    quantization: Optional[str]  # 4bit | 8bit (bitsandbytes) | None
    backend: str  # a key of mergelab.evaluate.harness_model.BACKENDS
    apply_chat_template: bool
    fewshot_as_multiturn: bool
    gen_kwargs: Union[Dict[str, Any], str, None]
    seeds: Dict[str, int]  # random, numpy, torch, fewshot
    log_samples: bool
    trust_remote_code: bool
    bootstrap_iters: int
    model_args: Dict[str, Any]
    revision: Optional[str]  # a hub parent's models.<name>.revision; None for every other model


@dataclass(frozen=True)
class HolmesSettings(Payload):
    """The probing settings (the holmes section): one job's, its dtype resolved (holmes.dtype, else
    the model's own; mergelab.plan.evaluation.HolmesPlan.settings_for), or the campaign's (dtype
    as holmes.dtype gives it: None for the model's own)."""

    seeds: List[int]
    objective: str  # reference | standard
    batch_size: int
    dtype: Optional[str]
    max_length: Optional[int]  # None: the model's limit
    features: str = omitted_default("full")  # full | reference
    trust_remote_code: bool = omitted_default(False)  # the model's harness setting: load its own code


@dataclass(frozen=True)
class SanityJob(JobSpec):
    model: str
    model_path: str  # as EvaluationJob's
    receipt: Optional[str]
    parents: List[str]  # the checks of the models a merge reads (its reference); none for a parent
    on_fail: str  # skip | evaluate | stop (sanity.on_fail); recorded in the check for the evaluation jobs
    max_ppl_ratio: float
    trust_remote_code: bool = added_field(False)  # the model's harness setting: load its own code


@dataclass(frozen=True)
class EvaluationJob(JobSpec):
    model: str
    model_path: str  # the model's directory; for a hub parent its hub id (the job reads its receipt)
    receipt: Optional[str]  # a hub parent's fetch receipt, naming its local snapshot


@dataclass(frozen=True)
class HarnessJob(EvaluationJob):
    task: str
    settings: HarnessSettings = payload_field(HarnessSettings)
    include_paths: List[str]  # harness.include_path; the workflow's own tasks are searched first
    include_defaults: bool  # index lm-eval's built-in tasks too (the task is not a local one)


@dataclass(frozen=True)
class HarnessModelJob(EvaluationJob):
    """harness.jobs: per_model: every task of one model, one model load."""

    tasks: List[str]  # harness.tasks, in order; one results JSON each
    groups: List[List[str]]  # the tasks in groups of identical settings: one lm-eval run each
    settings: Dict[str, HarnessSettings] = payload_field(HarnessSettings, per_key=True)  # task -> its settings
    include_paths: List[str]
    include_defaults: bool  # some task is not a local one
    local_tasks: List[str]  # the tasks of the local task folders: checked before the model loads


@dataclass(frozen=True)
class HarnessDataJob(JobSpec):
    """harness_data: download the Hub datasets of one task (all its subtasks') once."""

    task: str
    include_paths: List[str]  # as HarnessJob's
    include_defaults: bool
    cache_dir: Optional[str]  # harness.data.cache_dir; None: the datasets cache


@dataclass(frozen=True)
class HolmesJob(EvaluationJob):
    data_dir: str  # <holmes.data.root>/<version>
    datasets: Optional[List[str]]  # as HolmesDataJob's; the job probes those its manifest (input) lists
    settings: HolmesSettings = payload_field(HolmesSettings)


@dataclass(frozen=True)
class HolmesDataJob(JobSpec):
    version: str
    root: str
    archive: Optional[str]
    url: Optional[str]
    # dataset names; when only the data can tell (a version of the user's own fetched from
    # url): holmes.datasets, names and patterns, or None for every dataset found
    datasets: Optional[List[str]]


# --------------------------------------------------------------------------- hub stage


@dataclass(frozen=True)
class FetchJob(JobSpec):
    repo_id: str
    revision: Optional[str]
    patterns: List[str]
    cache_dir: Optional[str]
    retries: int
    retry_wait: float


@dataclass(frozen=True)
class PushJob(JobSpec):
    repo_id: str
    private: bool
    message: str
    retries: int
    retry_wait: float


@dataclass(frozen=True)
class PushResultsJob(JobSpec):
    repo_id: str
    model: str
    retries: int
    retry_wait: float


# --------------------------------------------------------------------------- organize and plot stages


@dataclass(frozen=True)
class Catalogue(Payload):
    """What the tables, the figures and provenance.json know about the campaign (built by
    mergelab.plan.catalogue.catalogue): every model and the evaluation settings."""

    models: Dict[str, Dict[str, Any]]  # model -> role, recipe, method, parameters, parents, lineage, search...
    model_order: List[str]  # the models in the config's order (``models`` travels sorted)
    harness: Dict[str, Any]  # tasks, settings, model_settings, task_settings: as the config gives them
    holmes: Dict[str, Any]  # active, version, datasets, settings (HolmesSettings.record: the campaign's)
    stats: Dict[str, Any]  # the stats section
    # model -> why its sanity check found it broken: the organize job adds it (the leaderboard and
    # provenance.json give the reasons); never part of the params
    broken: Dict[str, List[str]] = omitted_default({})


@dataclass(frozen=True)
class OrganizeJob(JobSpec):
    catalogue: Catalogue = payload_field(Catalogue)
    files: Dict[str, Any]  # harness: model -> task -> JSON; holmes: model -> scores; holmes_manifest; holmes_probes


@dataclass(frozen=True)
class PlotJob(JobSpec):
    catalogue: Catalogue = payload_field(Catalogue)
    figures: List[Dict[str, Any]]  # mergelab.plan.figures.figures: name, wildcards, stem


# --------------------------------------------------------------------------- merge search


@dataclass(frozen=True)
class SearchProposeJob(JobSpec):
    """search_propose: tell the sampler the previous generation's scores, ask for this one's trials."""

    search: Dict[str, Any]  # mergelab.plan.search.SearchPlan.spec: methods, dimensions, objectives, sampler, ...
    generation: int
    numbers: List[int]  # the trial numbers to ask for
    models: List[str]  # their merge ids
    told: List[int]  # the previous generation's trial numbers, whose dev results are inputs


@dataclass(frozen=True)
class SearchProbeJob(HolmesJob):
    """search_probe: a trial probed by Holmes on the datasets of the objectives' competences."""

    competences: List[str]  # Holmes competences; overall: every dataset of known competence


@dataclass(frozen=True)
class SearchSummaryJob(JobSpec):
    """search_summary: tell the last generation's scores; write trials.csv, best.yaml, the journal."""

    search: Dict[str, Any]
    told: List[int]
    recipe: Dict[
        str, Any
    ]  # models, base, fixed parameters, seeds, dtype: best.yaml's recipes are this + a trial's values


@dataclass(frozen=True)
class SearchPlotJob(JobSpec):
    search: Dict[str, Any]
