"""Load, validate and expand an experiment config.

Runs while Snakemake builds the DAG: it imports only yaml and jsonschema.
Every problem becomes one ConfigError whose text names the file and the key,
e.g. ``config/experiment.yaml: merges[1].methods[0]: unknown method 'tie'``.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import yaml

from mergelab.methods import METHODS, Method, check_pair, id_order

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = "config/experiment.yaml"
FETCHED_DIR = "results/hub/parents"  # fetch receipts of the hub parents
DEMO_DIR = "results/demo"
MODELS_DIR = "results/models"
MOE_GATE_MODES = ("hidden", "cheap_embed", "random", "uniform_random")
# moe.architecture -> the prefix of mergekit-moe's output architecture name it selects
MOE_ARCHITECTURES = {"mixtral": "mixtral", "deepseek": "deepseek", "qwen": "qwen moe", "qwen3": "qwen3"}
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(Exception):
    """A problem in the experiment config; the message is one line for the user."""


# --------------------------------------------------------------------------- schema


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def key_path(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _close(word: str, options) -> str:
    near = difflib.get_close_matches(str(word), [str(o) for o in options], n=3, cutoff=0.6)
    return f"; did you mean {', '.join(near)}?" if near else ""


def yaml_error_text(e: Exception) -> str:
    """' (line L, column C): problem' for a YAML parse error."""
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{where}: {getattr(e, 'problem', None) or e}"


def _schema_message(err):
    """One readable line for a jsonschema error."""
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        name = extra[0] if extra else "?"
        hint = _close(name, allowed) or (f" (known keys: {', '.join(allowed)})" if allowed else "")
        return f"unknown key '{name}'{hint}", [name]
    if v == "enum":
        options = [o for o in err.validator_value if o is not None]
        hint = _close(err.instance, options) if len(options) > 6 else ""
        return f"{err.instance!r} is not one of: {', '.join(map(str, options))}{hint}", []
    if v == "type":
        types = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        types = [t for t in types if t != "null"]
        return f"must be {' or '.join(types)}, got {err.instance!r}", []
    if v == "required":
        return err.message.replace("is a required property", "is missing (required)"), []
    if v == "minItems":
        return f"must list at least {err.validator_value} item(s), got {err.instance!r}", []
    if v == "uniqueItems":
        return f"lists the same value twice: {err.instance!r}", []
    if v == "pattern":
        if list(err.absolute_path)[-1:] == ["name"]:
            return (f"{err.instance!r}: a recipe name uses letters, digits, '.' and '-' "
                    "('_' separates the parts of merge ids)"), []
        return f"{err.instance!r} does not match {err.validator_value}", []
    if v == "minimum":
        return f"must be >= {err.validator_value}, got {err.instance!r}", []
    if v == "propertyNames":
        return f"bad name {err.instance!r}: names use letters, digits, '.', '_', '-'", []
    return err.message, []


def validate_schema(cfg: Any, schema: dict, source: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(cfg))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    # prefer the deepest error: it names the offending key
    err = max(errors, key=lambda e: len(e.absolute_path)) if err.validator in ("anyOf", "oneOf") else err
    msg, extra = _schema_message(err)
    raise ConfigError(f"{source}: {key_path(list(err.absolute_path) + extra)}: {msg}")


def fill_defaults(cfg: dict, schema: dict) -> dict:
    """Return a copy of cfg with the schema's defaults filled in, recursively."""
    cfg = copy.deepcopy(cfg)

    def walk(node, sch):
        if not isinstance(sch, dict):
            return
        if isinstance(node, dict):
            props = sch.get("properties", {})
            for key, sub in props.items():
                if key not in node and "default" in sub:
                    node[key] = copy.deepcopy(sub["default"])
                if key in node:
                    walk(node[key], sub)
            addl = sch.get("additionalProperties")
            if isinstance(addl, dict):
                for key in node:
                    if key not in props:
                        walk(node[key], addl)
        elif isinstance(node, list) and isinstance(sch.get("items"), dict):
            for item in node:
                walk(item, sch["items"])

    walk(cfg, schema)
    return cfg


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # path | hub | demo
    location: str  # absolute directory, or hub id
    revision: Optional[str] = None
    dtype: str = "auto"
    input_path: Optional[str] = None  # the rule input: the directory, or a hub model's fetch receipt
    gpus: Optional[int] = None
    resources: Optional[Dict[str, Any]] = None  # per-rule overrides of the size-based estimates

    @property
    def local_dir(self) -> Optional[str]:
        return None if self.kind == "hub" else self.location

    @property
    def receipt(self) -> Optional[str]:
        """The fetch receipt naming the hub model's local snapshot."""
        return self.input_path if self.kind == "hub" else None

    @property
    def mergekit_ref(self) -> str:
        if self.kind == "hub" and self.revision:
            return f"{self.location}@{self.revision}"
        return self.location


@dataclass
class MergeSpec:
    id: str
    recipe: str
    method: str
    seed: int
    params: Dict[str, Any]  # what the recipe asked for, after defaults (per-model values as dicts)
    mergekit_config: Dict[str, Any]
    inputs: List[str]  # model keys the merge reads
    raw_file: Optional[str] = None
    dtype: str = "auto"  # the dtype its weights are written in
    gpus: Optional[int] = None
    resources: Optional[Dict[str, Any]] = None  # per-rule overrides of the size-based estimates
    parents: List[str] = field(default_factory=list)  # the models merged (the recipe's `models`)
    base: Optional[str] = None  # the recipe's base model

    def table_row(self) -> Dict[str, str]:
        return {
            "model": self.id,
            "recipe": self.recipe,
            "method": self.method,
            "seed": str(self.seed),
            "inputs": ",".join(self.inputs),
            "parameters": json.dumps(self.params, sort_keys=True),
            "mergekit_config": json.dumps(self.mergekit_config, sort_keys=True),
        }


TABLE_COLUMNS = ["model", "recipe", "method", "seed", "inputs", "parameters", "mergekit_config"]


@dataclass
class Experiment:
    source: str
    config: dict
    models: Dict[str, ModelSpec]
    merges: Dict[str, MergeSpec] = field(default_factory=dict)
    workdir: Path = field(default_factory=Path.cwd)
    harness: Any = None  # evalplan.HarnessPlan
    holmes: Any = None  # evalplan.HolmesPlan
    hub: Any = None  # evalplan.HubPlan

    @property
    def merge_ids(self) -> List[str]:
        return list(self.merges)

    def model_path(self, name: str) -> str:
        """What tools load for model ``name``: a local directory, or a hub id (parents)."""
        if name in self.merges:
            return str(self.workdir / MODELS_DIR / name)
        return self.models[name].location

    def model_input(self, name: str) -> List[str]:
        """The Snakemake input naming the model's directory (none for hub models)."""
        if name in self.merges:
            return [f"{MODELS_DIR}/{name}"]
        m = self.models[name]
        return [m.input_path] if m.input_path else []

    def role(self, name: str) -> str:
        """merge, base (the base of some recipe) or parent."""
        if name in self.merges:
            return "merge"
        return "base" if any(spec.base == name for spec in self.merges.values()) else "parent"

    def receipt(self, name: str) -> Optional[str]:
        """For a hub parent, the fetch receipt that gives its local snapshot; else None."""
        return None if name in self.merges else self.models[name].receipt

    def model_dtype(self, name: str) -> str:
        """The dtype a model's weights are in (auto: as its config says)."""
        return self.merges[name].dtype if name in self.merges else self.models[name].dtype

    def gpus(self, name: str) -> Optional[int]:
        """The GPUs the config gives model ``name``'s jobs; None: estimate from the size."""
        spec = self.merges.get(name) or self.models.get(name)
        return None if spec is None else spec.gpus

    def resource_overrides(self, name: str) -> Dict[str, Any]:
        """The config's per-rule resources for model ``name``'s jobs (models.<name>.resources)."""
        spec = self.merges.get(name) or self.models.get(name)
        return dict((spec.resources if spec else None) or {})

    def demo_models(self) -> List[str]:
        return sorted({m.name for m in self.models.values() if m.kind == "demo"})

    def merges_table(self) -> str:
        lines = ["\t".join(TABLE_COLUMNS)]
        for spec in self.merges.values():
            row = spec.table_row()
            lines.append("\t".join(row[c] for c in TABLE_COLUMNS))
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- models


def _resolve_models(models_cfg: Mapping[str, dict], source: str, workdir: Path) -> Dict[str, ModelSpec]:
    out = {}
    for name, m in models_cfg.items():
        where = f"{source}: models.{name}"
        given = [k for k in ("path", "hub", "demo") if m.get(k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"{where}: give exactly one of path, hub, demo"
                + (f" (got {', '.join(given)})" if given else "")
            )
        kind = given[0]
        if m.get("revision") is not None and kind != "hub":
            raise ConfigError(f"{where}.revision: a revision pins a hub model; this model is a local {kind}")
        if kind == "hub":
            hub_id = m["hub"]
            if not HUB_ID.match(hub_id):
                raise ConfigError(f"{where}.hub: {hub_id!r} is not a Hub model id (expected owner/name)")
            out[name] = ModelSpec(name, "hub", hub_id, m.get("revision"), m["dtype"],
                                  f"{FETCHED_DIR}/{name}.json", m.get("gpus"), m.get("resources"))
        elif kind == "demo":
            rel = f"{DEMO_DIR}/{m['demo']}"
            out[name] = ModelSpec(name, "demo", str((workdir / rel).resolve()), None, m["dtype"], rel, m.get("gpus"), m.get("resources"))
        else:
            raw = os.path.expanduser(m["path"])
            path = (workdir / raw).resolve()
            if "@" in str(path):
                raise ConfigError(f"{where}.path: '@' in a model path is not supported by mergekit: {raw}")
            if not path.is_dir():
                raise ConfigError(f"{where}.path: model directory does not exist: {raw}")
            if not (path / "config.json").is_file():
                raise ConfigError(f"{where}.path: not a model directory (no config.json): {raw}")
            out[name] = ModelSpec(name, "path", str(path), None, m["dtype"], str(path), m.get("gpus"), m.get("resources"))
    return out


# --------------------------------------------------------------------------- merges


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _is_scalar(v):
    return isinstance(v, (bool, int, float))


class _Recipe:
    """Expands one `merges:` entry; `where` prefixes every error."""

    def __init__(self, index: int, r: dict, models: Dict[str, ModelSpec], source: str, workdir: Path,
                 given: Iterable[str] = ()):
        self.r = r
        self.models = models
        self.source = source
        self.workdir = workdir
        self.where = f"{source}: merges[{index}]"
        self.name = r["name"]
        self.given = set(given)  # the keys the user wrote (before the schema's defaults)

    def fail(self, key: str, msg: str):
        raise ConfigError(f"{self.where}{'.' + key if key else ''}: {msg}")

    def model_ref(self, key: str, name: str) -> str:
        if name not in self.models:
            self.fail(key, f"unknown model {name!r}{_close(name, self.models)}" + (
                f" (models: {', '.join(self.models)})" if self.models else " (no models are declared)"))
        return name

    # ---- recipe form -----------------------------------------------------
    def expand(self) -> List[MergeSpec]:
        r = self.r
        if r.get("mergekit_config") is not None:
            for key in ("models", "base", "methods"):
                if r.get(key) is not None:
                    self.fail(key, "a recipe with mergekit_config takes its models and method from that file; remove this key")
            for key in ("parameters", "method_parameters"):
                if r.get(key):
                    self.fail(key, "a recipe with mergekit_config takes its parameters from that file; remove this key")
            return self.expand_raw()
        if not r.get("models"):
            self.fail("models", "list the models to merge (or give mergekit_config)")
        if not r.get("methods"):
            self.fail("methods", "list at least one merge method (or give mergekit_config)")
        names = [self.model_ref(f"models[{i}]", n) for i, n in enumerate(r["models"])]
        dup = [n for n in names if names.count(n) > 1]
        if dup:
            self.fail("models", f"model {dup[0]!r} is listed twice")
        base = self.model_ref("base", r["base"]) if r.get("base") is not None else None
        if base in names:
            self.fail("base", f"{base!r} is the base; do not list it in models too")
        self.check_parameter_keys()
        if "moe" in self.given and "moe" not in r["methods"]:
            self.fail("moe", "settings for method moe, which is not among this recipe's methods")
        out = []
        for method_name in r["methods"]:
            if method_name == "moe":
                out.extend(self.expand_moe(names, base))
            else:
                out.extend(self.expand_method(METHODS[method_name], names, base))
        return out

    # ---- mixture of experts (mergekit-moe) ----------------------------------
    def sweep(self, key: str, value) -> list:
        vals = value if isinstance(value, list) else [value]
        if not vals:
            self.fail(key, "empty sweep: give at least one value")
        if len(set(vals)) != len(vals):
            self.fail(key, "the sweep lists a value twice")
        return vals

    def expand_moe(self, names: List[str], base: Optional[str]) -> List[MergeSpec]:
        """One MoE merge per gate mode x experts per token (x seed for random gates):
        the recipe's models are the experts, over its base."""
        s, r = self.r["moe"], self.r
        if base is None:
            self.fail("base", f"moe builds the experts into a copy of a base model: set base to one of {', '.join(self.models)}")
        if len(names) < 2:
            self.fail("models", f"moe needs at least 2 experts (the recipe's models); this recipe gives {len(names)}: "
                                f"{', '.join(names)}")
        gates = self.sweep("moe.gate_mode", s["gate_mode"])
        for g in gates:
            if g not in MOE_GATE_MODES:
                self.fail("moe.gate_mode", f"unknown gate mode {g!r}{_close(g, MOE_GATE_MODES)} "
                                           f"(gate modes: {', '.join(MOE_GATE_MODES)})")
        ks = self.sweep("moe.experts_per_token", s["experts_per_token"])
        for k in ks:
            if k > len(names):
                self.fail("moe.experts_per_token", f"{k} experts per token, but the recipe has {len(names)} experts")
        prompts = s["prompts"]
        for m in prompts:
            if m not in names:
                self.fail(f"moe.prompts.{m}", f"{m!r} is not an expert of this recipe (experts: {', '.join(names)})")
        routed = [g for g in gates if g in ("hidden", "cheap_embed")]
        if routed:
            for n in names:
                if not (prompts.get(n) or {}).get("positive"):
                    self.fail(f"moe.prompts.{n}", f"gate mode {routed[0]} routes by prompts: give positive prompts for "
                                                  f"expert {n!r}")
            sets = {(tuple(prompts[n]["positive"]), tuple(prompts[n].get("negative") or [])) for n in names}
            if len(sets) == 1:
                self.fail("moe.prompts", "every expert has the same prompts: the routers could not tell them apart")
        shared = []
        for i, e in enumerate(s["shared_experts"]):
            ref = self.model_ref(f"moe.shared_experts[{i}].model", e["model"])
            shared.append((ref, e))
        arch = s["architecture"]
        with_prompts = [bool(e.get("positive")) for _, e in shared]
        if shared and len(set(with_prompts)) > 1:
            self.fail("moe.shared_experts", "give prompts to every shared expert or to none")
        if shared and arch == "mixtral":
            self.fail("moe.shared_experts", "the mixtral architecture has no shared experts; use qwen or deepseek")
        if arch == "qwen":
            if len(shared) != 1:
                self.fail("moe.shared_experts", f"architecture qwen needs exactly one shared expert (got {len(shared)})")
            if any(g not in ("random", "uniform_random") for g in gates) and not with_prompts[0]:
                self.fail("moe.shared_experts[0].positive", "architecture qwen gates its shared expert: give it prompts")
        if arch == "deepseek" and (len(shared) > 1 or any(with_prompts)):
            self.fail("moe.shared_experts", "architecture deepseek takes at most one shared expert, without prompts")

        def expert(name, e):
            out = {"source_model": self.models[name].mergekit_ref,
                   "positive_prompts": list(e.get("positive") or []),
                   "negative_prompts": list(e.get("negative") or [])}
            if e.get("residual_scale") is not None:
                out["residual_scale"] = e["residual_scale"]
            return out

        inputs = [base] + list(names) + [m for m, _ in shared if m not in names and m != base]
        out = []
        for gate, k in itertools.product(gates, ks):
            random_gate = gate in ("random", "uniform_random")
            for seed in (r["seeds"] if random_gate else r["seeds"][:1]):
                cfg: Dict[str, Any] = {
                    "base_model": self.models[base].mergekit_ref,
                    "gate_mode": gate,
                    "dtype": r["dtype"],
                    "experts_per_token": k,
                    "experts": [expert(n, prompts.get(n) or {}) for n in names],
                }
                if shared:
                    cfg["shared_experts"] = [expert(m, e) for m, e in shared]
                if arch:
                    cfg["architecture"] = MOE_ARCHITECTURES[arch]
                params = {"gate_mode": gate, "experts_per_token": k}
                if arch:
                    params["architecture"] = arch
                mid = f"{self.name}_moe_{gate}_e{k}" + (f"_s{seed}" if random_gate else "")
                out.append(MergeSpec(mid, self.name, "moe", seed, params, cfg, list(inputs), dtype=r["dtype"],
                                     gpus=r.get("gpus"), resources=r.get("resources"), parents=list(names), base=base))
        return out

    def check_parameter_keys(self):
        methods = [METHODS[m] for m in self.r["methods"] if m != "moe"]
        if not methods and self.r["parameters"]:
            self.fail("parameters", "moe takes no method parameters; its settings go under `moe:`")
        for pname in self.r["parameters"]:
            if not any(m.param(pname) for m in methods):
                known = sorted({p.name for m in methods for p in m.params})
                self.fail(
                    f"parameters.{pname}",
                    f"unknown parameter for {', '.join(m.name for m in methods)}{_close(pname, known)}"
                    + (f" (they take: {', '.join(known)})" if known else " (they take no parameters)"),
                )
        for mname, params in self.r["method_parameters"].items():
            if mname not in self.r["methods"]:
                self.fail(f"method_parameters.{mname}", f"{mname!r} is not among this recipe's methods ({', '.join(self.r['methods'])})")
            if mname == "moe":
                self.fail("method_parameters.moe", "moe takes its settings from the recipe's `moe:` key")
            m = METHODS[mname]
            for pname in params:
                if not m.param(pname):
                    self.fail(
                        f"method_parameters.{mname}.{pname}",
                        f"unknown parameter for {mname}{_close(pname, m.param_names)}"
                        + (f" ({mname} takes: {', '.join(m.param_names)})" if m.params else f" ({mname} takes no parameters)"),
                    )

    def inputs_for(self, m: Method, names: List[str], base: Optional[str]):
        """(mergekit base or None, input model keys in order) for method m."""
        if m.base == "ignored":
            inputs, mk_base = list(names), None
        elif m.pair_with_base:
            # slerp & co. interpolate between two models, the first being the base
            # (t=0). With a recipe base and two models, the pair is the two models.
            inputs = list(names) if (base is None or len(names) == 2) else [base] + list(names)
            mk_base = inputs[0]
        else:
            inputs = ([base] if base else []) + list(names)
            mk_base = base
        if m.base == "required" and mk_base is None:
            self.fail("base", f"{m.name} needs a base model: set base to one of {', '.join(self.models)}")
        n, nb = len(inputs), len(inputs) - (1 if mk_base else 0)
        desc = "models" + (" including the base" if mk_base and not m.pair_with_base else "")
        if m.min_inputs == m.max_inputs and n != m.min_inputs:
            self.fail("models", f"{m.name} merges exactly {m.min_inputs} {desc}; this recipe gives {n}: {', '.join(inputs)}")
        if n < m.min_inputs:
            self.fail("models", f"{m.name} needs at least {m.min_inputs} {desc}; this recipe gives {n}: {', '.join(inputs)}")
        if m.max_inputs is not None and n > m.max_inputs:
            self.fail("models", f"{m.name} takes at most {m.max_inputs} {desc}; this recipe gives {n}: {', '.join(inputs)}")
        if m.min_non_base is not None and m.min_non_base == m.max_non_base and nb != m.min_non_base:
            self.fail("models", f"{m.name} merges exactly {m.min_non_base} models besides the base; this recipe gives {nb}")
        if m.min_non_base is not None and nb < m.min_non_base:
            self.fail("models", f"{m.name} needs at least {m.min_non_base} models besides the base; this recipe gives {nb}")
        return mk_base, inputs

    def sweep_axes(self, m: Method, settings: Dict[str, Any], targets: List[str], keyp: Dict[str, str]):
        """Turn settings into axes: list of (param, model or None, [values])."""
        axes = []
        for pname in id_order(m, settings):
            p = m.param(pname)
            value = settings[pname]
            key = keyp.get(pname, pname)
            if isinstance(value, dict):
                if not p.per_model:
                    self.fail(key, f"{pname} is one value for the whole merge, not per model")
                for model in value:
                    if model not in targets:
                        self.fail(f"{key}.{model}", f"{m.name} sets {pname} for {', '.join(targets)}; {model!r} is not one of them")
                missing = [t for t in targets if t not in value]
                if missing:
                    self.fail(key, f"no value for model {missing[0]!r} (give one per model: {', '.join(targets)}, or a single value)")
                for model in targets:
                    axes.append((pname, model, self.values(f"{key}.{model}", p, value[model])))
            else:
                axes.append((pname, None, self.values(key, p, value)))
        return axes

    def values(self, key: str, p, value) -> list:
        vals = value if isinstance(value, list) else [value]
        if not vals:
            self.fail(key, "empty sweep: give at least one value")
        for v in vals:
            if not _is_scalar(v):
                self.fail(key, f"values must be numbers or booleans, got {v!r}")
            problem = p.check(v)
            if problem:
                self.fail(key, f"{p.name} {problem}")
        seen = set()
        for v in vals:
            if v in seen:
                self.fail(key, f"the sweep lists {v!r} twice")
            seen.add(v)
        return [p.type(v) if p.type is not bool else v for v in vals]

    def expand_method(self, m: Method, names: List[str], base: Optional[str]) -> List[MergeSpec]:
        mk_base, inputs = self.inputs_for(m, names, base)
        targets = {"input": inputs, "non_base": [i for i in inputs if i != mk_base]}
        settings: Dict[str, Any] = dict(m.defaults)
        keyp = {}
        for pname, v in self.r["parameters"].items():
            if m.param(pname):
                settings[pname], keyp[pname] = v, f"parameters.{pname}"
        for pname, v in self.r["method_parameters"].get(m.name, {}).items():
            settings[pname], keyp[pname] = v, f"method_parameters.{m.name}.{pname}"
        for p in m.params:
            if p.required and p.name not in settings:
                self.fail(f"parameters.{p.name}", f"{m.name} needs {p.name}")

        axes = []
        for pname in id_order(m, settings):
            p = m.param(pname)
            tgt = targets["input"] if p.scope == "input" else targets["non_base"]
            axes.extend(self.sweep_axes(m, {pname: settings[pname]}, tgt, keyp))
        seeds = self.r["seeds"] if m.random else self.r["seeds"][:1]

        out = []
        for combo in itertools.product(*[a[2] for a in axes]):
            shared, per_model = {}, {}
            for (pname, model, _), v in zip(axes, combo):
                if model is None:
                    p = m.param(pname)
                    if p.per_model:
                        for t in targets["input" if p.scope == "input" else "non_base"]:
                            per_model.setdefault(t, {})[pname] = v
                    else:
                        shared[pname] = v
                else:
                    per_model.setdefault(model, {})[pname] = v
            for t, vals in per_model.items():
                problem = check_pair(m, vals)
                if problem:
                    self.fail("parameters", f"{m.name} for {t}: {problem}")
            params = self.params_view(m, shared, per_model, targets)
            for seed in seeds:
                mid = self.merge_id(m, params, seed)
                cfg = self.mergekit_dict(m, mk_base, inputs, shared, per_model)
                out.append(MergeSpec(mid, self.name, m.name, seed, params, cfg, list(inputs),
                                     dtype=cfg.get("out_dtype") or cfg["dtype"], gpus=self.r.get("gpus"), resources=self.r.get("resources"),
                                     parents=list(names), base=base))
        return out

    @staticmethod
    def params_view(m, shared, per_model, targets) -> Dict[str, Any]:
        """Parameters as the user thinks of them: one value, or a value per model."""
        view = dict(shared)
        names = {p for vals in per_model.values() for p in vals}
        for pname in names:
            p = m.param(pname)
            tg = targets["input" if p.scope == "input" else "non_base"]
            vals = [per_model[t][pname] for t in tg]
            view[pname] = vals[0] if len(set(vals)) == 1 else {t: per_model[t][pname] for t in tg}
        return {k: view[k] for k in id_order(m, view)}

    def merge_id(self, m: Method, params: Dict[str, Any], seed: int) -> str:
        parts = [self.name, m.name]
        for pname, v in params.items():
            shown = "-".join(fmt_value(x) for x in v.values()) if isinstance(v, dict) else fmt_value(v)
            parts.append(f"{m.param(pname).abbrev}{shown}")
        if m.random:
            parts.append(f"s{seed}")
        return "_".join(parts)

    def common_keys(self) -> Dict[str, Any]:
        r = self.r
        cfg: Dict[str, Any] = {"dtype": r["dtype"]}
        if r.get("out_dtype"):
            cfg["out_dtype"] = r["out_dtype"]
        ts = r.get("tokenizer_source")
        if ts is not None:
            cfg["tokenizer_source"] = ts if ts in ("base", "union") else self.models[self.model_ref("tokenizer_source", ts)].mergekit_ref
        return cfg

    def mergekit_dict(self, m, mk_base, inputs, shared, per_model) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {"merge_method": m.name}
        if mk_base:
            cfg["base_model"] = self.models[mk_base].mergekit_ref
        entries = []
        for name in inputs:
            if name == mk_base and not m.pair_with_base:
                continue  # mergekit adds the base to the inputs itself
            entry: Dict[str, Any] = {"model": self.models[name].mergekit_ref}
            if per_model.get(name):
                entry["parameters"] = dict(per_model[name])
            entries.append(entry)
        cfg["models"] = entries
        if shared:
            cfg["parameters"] = dict(shared)
        cfg.update(self.common_keys())
        return cfg

    # ---- raw mergekit YAML ----------------------------------------------
    def expand_raw(self) -> List[MergeSpec]:
        rel = self.r["mergekit_config"]
        path = (self.workdir / os.path.expanduser(rel)).resolve()
        key = "mergekit_config"
        if not path.is_file():
            self.fail(key, f"file not found: {rel}")
        try:
            with open(path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh)
        except yaml.YAMLError as e:
            self.fail(key, f"{rel} is not valid YAML{yaml_error_text(e)}")
        if not isinstance(raw, dict):
            self.fail(key, f"{rel} must hold a mapping with merge_method and models/slices, got {type(raw).__name__}")
        method = raw.get("merge_method")
        if method not in METHODS:
            self.fail(key, f"{rel}: merge_method {method!r} is not a mergekit method{_close(method, METHODS)}")
        forms = [k for k in ("models", "slices", "modules") if raw.get(k)]
        if len(forms) != 1:
            self.fail(key, f"{rel} must have exactly one of models, slices, modules (has {', '.join(forms) or 'none'})")
        used: List[str] = []
        cfg = self.substitute(raw, used, rel)
        for k, v in self.common_keys().items():
            if k != "dtype":
                cfg.setdefault(k, v)
        m = METHODS[method]
        seeds = self.r["seeds"] if m.random else self.r["seeds"][:1]
        base = raw.get("base_model") if raw.get("base_model") in self.models else None
        return [
            MergeSpec(
                f"{self.name}_s{seed}" if m.random else self.name,
                self.name, method, seed, {}, copy.deepcopy(cfg), used, str(path),
                dtype=cfg.get("out_dtype") or cfg.get("dtype") or "auto", gpus=self.r.get("gpus"), resources=self.r.get("resources"),
                parents=[u for u in used if u != base], base=base,
            )
            for seed in seeds
        ]

    def substitute(self, node, used: List[str], rel: str):
        """Replace model keys by their mergekit references, everywhere a model is named."""
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "tokenizer_source" and v in ("base", "union"):
                    out[k] = v
                elif k in ("model", "base_model", "tokenizer_source", "source_model") and isinstance(v, str):
                    out[k] = self.ref_in_raw(v, used, rel)
                else:
                    out[k] = self.substitute(v, used, rel)
            return out
        if isinstance(node, list):
            return [self.substitute(v, used, rel) for v in node]
        return node

    def ref_in_raw(self, name: str, used: List[str], rel: str) -> str:
        if name in self.models:
            if name not in used:
                used.append(name)
            return self.models[name].mergekit_ref
        local = name.startswith(("/", "./", "../", "~")) or name.count("/") != 1
        if local:
            path = (self.workdir / os.path.expanduser(name)).resolve()
            if not path.is_dir():
                self.fail("mergekit_config", f"{rel}: model {name!r} is neither a key of models: nor an existing directory")
            return str(path)
        return name  # a hub id, used as-is


def load_experiment(cfg: Optional[dict], source: str, workdir: Optional[os.PathLike] = None,
                    lm_eval_tasks: Optional[Callable[[], Optional[Dict[str, str]]]] = None) -> Experiment:
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
    raw_merges = cfg.get("merges") or []
    cfg = fill_defaults(cfg, schema)
    models = _resolve_models(cfg["models"], source, workdir)
    exp = Experiment(source, cfg, models, workdir=workdir)

    seen_names: Dict[str, int] = {}
    for i, r in enumerate(cfg["merges"]):
        name = r["name"]
        if name in seen_names:
            raise ConfigError(f"{source}: merges[{i}].name: duplicate merge name {name!r} (also merges[{seen_names[name]}])")
        if name in models:
            raise ConfigError(f"{source}: merges[{i}].name: {name!r} is also a model name; names must be unique")
        seen_names[name] = i
        for spec in _Recipe(i, r, models, source, workdir, given=raw_merges[i]).expand():
            if spec.id in exp.merges or spec.id in models:
                raise ConfigError(f"{source}: merges[{i}]: merge id {spec.id!r} appears twice")
            exp.merges[spec.id] = spec

    def fail(key, msg):
        raise ConfigError(f"{source}: {key}: {msg}")

    from mergelab.evalplan import build_harness_plan, build_holmes_plan, build_hub_plan
    from mergelab.tasks import lm_eval_index

    exp.harness = build_harness_plan(cfg, schema, exp, workdir, fail, lm_eval_tasks or lm_eval_index)
    exp.holmes = build_holmes_plan(cfg, exp, workdir, fail)
    exp.hub = build_hub_plan(cfg, exp, fail)
    return exp


def read_config_file(path: os.PathLike) -> Any:
    """Load a YAML config file; a missing or unparsable file is a ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (run from the workflow's directory, or give --configfile)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML{yaml_error_text(e)}") from None


def typed_cli_values(node: Any) -> Any:
    """Values of `snakemake --config` with their string leaves read as YAML scalars."""
    if isinstance(node, dict):
        return {k: typed_cli_values(v) for k, v in node.items()}
    if isinstance(node, list):
        return [typed_cli_values(v) for v in node]
    if isinstance(node, str):
        try:
            value = yaml.safe_load(node)
        except yaml.YAMLError:
            return node
        return value if isinstance(value, (bool, int, float, type(None))) else node
    return node
