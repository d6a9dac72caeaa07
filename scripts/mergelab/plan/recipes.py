"""One merge recipe (an entry of `merges:`) expanded into merges with stable, readable ids.

A recipe names models, a base and methods, with parameters that may be sweeps
(lists) and per-model values; it expands to one merge per method x sweep point
(x seed for the random methods). A recipe may instead name a raw mergekit file
(mergelab.plan.mergekit_config); method moe: mergelab.plan.moe. Method contracts
come from mergelab.plan.methods (no mergekit import). Each merge records the parameters
it sweeps, so the figures never have to guess them. The whole section, recipes
reading each other's merges: mergelab.plan.merges.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from mergelab.plan.errors import ConfigError, did_you_mean
from mergelab.plan.mergekit_config import expand_raw
from mergelab.plan.methods import METHODS, Method, check_pair, id_order
from mergelab.plan.models import MergeSpec, ModelSpec
from mergelab.plan.moe import expand_moe


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


# Methods that mergekit runs on a single model and that then return it unchanged
# (mergekit 0.1.5: linear normalizes a lone weight to 1, karcher and multislerp return a
# lone input as is): which count must reach two. The task-vector methods are not here:
# base + one model scales or sparsifies one task vector, a real merge.
ONE_INPUT_IS_A_COPY = {"linear": "models", "karcher": "models", "multislerp": "models besides the base"}


class Pending(ConfigError):
    """A recipe names a model that is not known (yet): maybe a merge of a recipe still to expand."""

    def __init__(self, name: str, key: str, message: str):
        super().__init__(message)
        self.name, self.key = name, key


class Recipe:
    """Expands one `merges:` entry; `where` prefixes every error. ``models``: every model it may
    name (the parents, and the merges expanded so far, by id and by one-merge recipe name);
    ``recipe_ids``: the merge ids of every recipe expanded so far."""

    def __init__(
        self,
        index: int,
        r: dict,
        models: Dict[str, ModelSpec],
        source: str,
        workdir: Path,
        given: Iterable[str] = (),
        recipe_ids: Optional[Dict[str, List[str]]] = None,
    ):
        self.r = r
        self.models = models
        self.recipe_ids = recipe_ids or {}
        self.source = source
        self.workdir = workdir
        self.where = f"{source}: merges[{index}]"
        self.name = r["name"]
        self.given = set(given)  # the keys the user wrote (before the schema's defaults)

    def fail(self, key: str, msg: str):
        raise ConfigError(f"{self.where}{'.' + key if key else ''}: {msg}")

    def model_ref(self, key: str, name: str) -> str:
        """The model ``name`` names (a key of models:, a merge id, or a recipe that makes one merge),
        by its canonical name; Pending while it may be a merge of a recipe not expanded yet."""
        if name in self.models:
            return self.models[name].name
        made = self.recipe_ids.get(name)
        if made is not None:
            self.fail(key, f"recipe {name!r} makes {len(made)} merges ({', '.join(made)}): name one of them")
        raise Pending(
            name,
            key,
            f"{self.where}.{key}: unknown model {name!r}{did_you_mean(name, self.models)}"
            + (f" (models and merges: {', '.join(self.models)})" if self.models else " (no models are declared)"),
        )

    # ---- recipe form -----------------------------------------------------
    def expand(self) -> List[MergeSpec]:
        r = self.r
        if r.get("mergekit_config") is not None:
            for key in ("models", "base", "methods"):
                if r.get(key) is not None:
                    self.fail(
                        key, "a recipe with mergekit_config takes its models and method from that file; remove this key"
                    )
            for key in ("parameters", "method_parameters"):
                if r.get(key):
                    self.fail(key, "a recipe with mergekit_config takes its parameters from that file; remove this key")
            return expand_raw(self)
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
                out.extend(expand_moe(self, names, base))
            else:
                out.extend(self.expand_method(METHODS[method_name], names, base))
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
                    f"unknown parameter for {', '.join(m.name for m in methods)}{did_you_mean(pname, known)}"
                    + (f" (they take: {', '.join(known)})" if known else " (they take no parameters)"),
                )
        for mname, params in self.r["method_parameters"].items():
            if mname not in self.r["methods"]:
                self.fail(
                    f"method_parameters.{mname}",
                    f"{mname!r} is not among this recipe's methods ({', '.join(self.r['methods'])})",
                )
            if mname == "moe":
                self.fail("method_parameters.moe", "moe takes its settings from the recipe's `moe:` key")
            m = METHODS[mname]
            for pname in params:
                if not m.param(pname):
                    self.fail(
                        f"method_parameters.{mname}.{pname}",
                        f"unknown parameter for {mname}{did_you_mean(pname, m.param_names)}"
                        + (
                            f" ({mname} takes: {', '.join(m.param_names)})"
                            if m.params
                            else f" ({mname} takes no parameters)"
                        ),
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
            self.fail(
                "models", f"{m.name} merges exactly {m.min_inputs} {desc}; this recipe gives {n}: {', '.join(inputs)}"
            )
        if n < m.min_inputs:
            self.fail(
                "models", f"{m.name} needs at least {m.min_inputs} {desc}; this recipe gives {n}: {', '.join(inputs)}"
            )
        if m.max_inputs is not None and n > m.max_inputs:
            self.fail(
                "models", f"{m.name} takes at most {m.max_inputs} {desc}; this recipe gives {n}: {', '.join(inputs)}"
            )
        if m.min_non_base is not None and m.min_non_base == m.max_non_base and nb != m.min_non_base:
            self.fail(
                "models", f"{m.name} merges exactly {m.min_non_base} models besides the base; this recipe gives {nb}"
            )
        if m.min_non_base is not None and nb < m.min_non_base:
            self.fail(
                "models", f"{m.name} needs at least {m.min_non_base} models besides the base; this recipe gives {nb}"
            )
        if m.name in ONE_INPUT_IS_A_COPY and (n if ONE_INPUT_IS_A_COPY[m.name] == "models" else nb) < 2:
            self.fail(
                "models",
                f"{m.name} of one model returns that model unchanged (mergekit accepts it; the result would "
                f"be a copy named as a merge): give at least two {ONE_INPUT_IS_A_COPY[m.name]}",
            )
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
                        self.fail(
                            f"{key}.{model}",
                            f"{m.name} sets {pname} for {', '.join(targets)}; {model!r} is not one of them",
                        )
                missing = [t for t in targets if t not in value]
                if missing:
                    self.fail(
                        key,
                        f"no value for model {missing[0]!r} (give one per model: {', '.join(targets)}, or a single value)",
                    )
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
        swept = tuple(dict.fromkeys(pname for pname, _, values in axes if len(values) > 1))

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
                out.append(
                    MergeSpec(
                        mid,
                        self.name,
                        m.name,
                        seed,
                        params,
                        cfg,
                        list(inputs) + [t for t in self.tokenizer_model() if t not in inputs],
                        dtype=cfg.get("out_dtype") or cfg["dtype"],
                        gpus=self.r.get("gpus"),
                        resources=self.r.get("resources"),
                        parents=list(names),
                        base=base,
                        swept=swept,
                    )
                )
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

    def tokenizer_model(self) -> List[str]:
        """The model the recipe's tokenizer_source names (an input of its merges), if any."""
        ts = self.r.get("tokenizer_source")
        return [] if ts is None or ts in ("base", "union") else [self.model_ref("tokenizer_source", ts)]

    def common_keys(self) -> Dict[str, Any]:
        r = self.r
        cfg: Dict[str, Any] = {"dtype": r["dtype"]}
        if r.get("out_dtype"):
            cfg["out_dtype"] = r["out_dtype"]
        ts = r.get("tokenizer_source")
        if ts is not None:
            cfg["tokenizer_source"] = (
                ts if ts in ("base", "union") else self.models[self.model_ref("tokenizer_source", ts)].mergekit_ref
            )
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
