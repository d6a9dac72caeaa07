"""Merge searches (`search:`): the plan side. Light imports only (this runs while the DAG is built).

A search names models, a base and methods as a recipe does, and a `space` of method
parameters; an Optuna sampler (mergelab.search, inside jobs) proposes `parallel` trials per
generation. Trial ``n`` is the merge ``<name>_t<nnn>`` of generation ``n // parallel``: its
id is known now, its parameters once its generation is proposed
(results/search/<name>/gen<g>/proposals.json), when the plan reads them to build an
ordinary MergeSpec with the recipe machinery (mergelab.plan.recipes).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mergelab.plan import paths
from mergelab.plan.errors import ConfigError, did_you_mean
from mergelab.plan.methods import METHODS, Param
from mergelab.plan.models import MergeSpec, ModelSpec, merge_model_spec
from mergelab.plan.recipes import Recipe

RANGE_KEYS = {"low", "high", "log"}


@dataclass(frozen=True)
class Dimension:
    """One parameter the sampler chooses: Optuna's name for it and its distribution."""

    name: str  # "weight", or "weight.math" for a per-model value
    param: str
    model: Optional[str]  # the model a per-model value is for; None: every model / the whole merge
    kind: str  # float | int | categorical
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    choices: Optional[List[Any]] = None

    def describe(self) -> Dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class SearchPlan:
    name: str
    index: int
    recipe: Dict[str, Any]  # the recipe a trial is expanded from (models, base, parameters, seeds, dtype)
    methods: List[str]
    dimensions: Dict[str, List[Dimension]]  # method -> the dimensions it takes
    objectives: List[Dict[str, Any]]  # [{name, tasks: {task: weight}}]
    limit: Optional[float]
    sampler: str
    trials: int
    parallel: int
    seed: int
    keep_trials: bool
    dtype: str
    stand_in: Optional[MergeSpec] = field(default=None, repr=False)  # a trial not proposed yet, for estimates

    @property
    def tasks(self) -> List[str]:
        """The objectives' tasks, in order: what each trial's dev evaluation runs."""
        return objective_parts(self.objectives, "tasks")

    @property
    def competences(self) -> List[str]:
        """The objectives' Holmes competences, in order: what each trial is probed on."""
        return objective_parts(self.objectives, "competences")

    def probe_result(self, model: str) -> str:
        return paths.SEARCH_PROBE.format(search=self.name, model=model)

    def dev_inputs(self, numbers: List[int]) -> Dict[str, List[str]]:
        """The dev results of trials ``numbers`` that score them: harness, and Holmes if asked."""
        out = {"dev": [self.dev_result(self.trial_id(n)) for n in numbers] if self.tasks else []}
        out["probe"] = [self.probe_result(self.trial_id(n)) for n in numbers] if self.competences else []
        return out

    @property
    def generations(self) -> int:
        return math.ceil(self.trials / self.parallel)

    def trial_id(self, number: int) -> str:
        return trial_id(self.name, number)

    @property
    def trial_ids(self) -> List[str]:
        return [self.trial_id(n) for n in range(self.trials)]

    def generation_of(self, number: int) -> int:
        return number // self.parallel

    def numbers(self, generation: int) -> List[int]:
        """The trial numbers of one generation."""
        start = generation * self.parallel
        return list(range(start, min(start + self.parallel, self.trials)))

    def proposals(self, generation: int) -> str:
        return paths.SEARCH_PROPOSALS.format(search=self.name, generation=generation)

    def journal(self, generation: int) -> str:
        return paths.SEARCH_GEN_JOURNAL.format(search=self.name, generation=generation)

    def dev_result(self, model: str) -> str:
        return paths.SEARCH_DEV.format(search=self.name, model=model)

    def spec(self) -> Dict[str, Any]:
        """What the sampler's jobs get (params: no absolute path)."""
        return {
            "name": self.name,
            "methods": list(self.methods),
            "dimensions": {m: [d.describe() for d in dims] for m, dims in self.dimensions.items()},
            "objectives": self.objectives,
            "sampler": self.sampler,
            "trials": self.trials,
            "parallel": self.parallel,
            "seed": self.seed,
        }

    def parameters(self, method: str, values: Dict[str, Any]) -> Dict[str, Any]:
        return trial_parameters(self.recipe["parameters"], self.spec()["dimensions"], method, values)


def trial_id(search: str, number: int) -> str:
    """The merge id of a search's trial ``number``."""
    return f"{search}_t{number:03d}"


def objective_parts(objectives: List[Dict[str, Any]], part: str) -> List[str]:
    """The tasks or competences (``part``) the objectives weigh, each once, in order."""
    return list(dict.fromkeys(k for o in objectives for k in o.get(part, {})))


def trial_parameters(
    fixed: Dict[str, Any], dimensions: Dict[str, List[Dict[str, Any]]], method: str, values: Dict[str, Any]
) -> Dict[str, Any]:
    """A trial's recipe parameters: the search's fixed ones that ``method`` takes, then its
    sampled ``values`` (by dimension name; a per-model dimension sets one model's value)."""
    m = METHODS[method]
    params: Dict[str, Any] = {k: v for k, v in fixed.items() if m.param(k)}
    for d in dimensions[method]:
        v = values[d["name"]]
        if d.get("model") is None:
            params[d["param"]] = v
        else:
            params.setdefault(d["param"], {})[d["model"]] = v
    return params


def best_recipe(recipe: Dict[str, Any], name: str, method: str, parameters: Dict[str, Any]) -> Dict[str, Any]:
    """A `merges:` recipe that makes a trial's merge again (best.yaml)."""
    out: Dict[str, Any] = {"name": name, "models": list(recipe["models"])}
    if recipe.get("base") is not None:
        out["base"] = recipe["base"]
    out.update(methods=[method], parameters=parameters, seeds=list(recipe["seeds"]), dtype=recipe["dtype"])
    return out


# ---------------------------------------------------------------------------- config


def _dimensions_of(key: str, pname: str, value: Any, models: List[str], params: List[Param], fail) -> List[Dimension]:
    """The dimensions of one `space` entry: a range, a {low, high, log} or {choices} mapping, or
    a mapping model -> one of these (a per-model parameter). ``params``: the parameter as each of
    the search's methods that take it defines it; every value must suit all of them."""
    if isinstance(value, dict) and value and not (set(value) <= RANGE_KEYS or "choices" in value):
        out = []
        for model, v in value.items():
            if model not in models:
                fail(f"{key}.{model}", f"{model!r} is not one of the models the search merges ({', '.join(models)})")
            out.append(_one_dimension(f"{key}.{model}", f"{pname}.{model}", pname, model, v, params, fail))
        return out
    return [_one_dimension(key, pname, pname, None, value, params, fail)]


def _check_value(key: str, pname: str, params: List[Param], value: Any, fail) -> None:
    for p in params:
        problem = p.check(value)
        if problem:
            fail(key, f"{pname} {problem}")


def _one_dimension(
    key: str, name: str, pname: str, model: Optional[str], value: Any, params: List[Param], fail
) -> Dimension:
    ptype = params[0].type
    if isinstance(value, dict) and "choices" in value:
        extra = set(value) - {"choices"}
        if extra:
            fail(key, f"choices take no other keys (got {', '.join(sorted(extra))})")
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            fail(f"{key}.choices", "give a non-empty list of values")
        if len(set(map(repr, choices))) != len(choices):
            fail(f"{key}.choices", "a value is listed twice")
        for c in choices:
            _check_value(f"{key}.choices", pname, params, c, fail)
        return Dimension(name, pname, model, "categorical", choices=list(choices))
    if isinstance(value, dict):
        missing = [k for k in ("low", "high") if k not in value]
        if missing:
            fail(key, f"a range needs low and high (missing {', '.join(missing)})")
        low, high, log = value["low"], value["high"], value.get("log", False)
        if not isinstance(log, bool):
            fail(f"{key}.log", f"must be true or false, got {log!r}")
    elif isinstance(value, list) and len(value) == 2:
        (low, high), log = value, False
    else:
        fail(key, f"give a range [low, high], {{low, high, log}} or {{choices: [...]}}, got {value!r}")
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            fail(key, f"a range takes numbers, got {v!r}")
    if ptype is bool:
        fail(key, f"{pname} is true or false: give {{choices: [true, false]}}")
    if not low < high:
        fail(key, f"empty range: low ({low}) must be below high ({high})")
    if log and low <= 0:
        fail(key, f"a log range needs low > 0, got {low}")
    for v in (low, high):
        _check_value(key, pname, params, v, fail)
    kind = "int" if ptype is int else "float"
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        fail(key, f"{pname} is a whole number: give whole bounds, got [{low}, {high}]")
    cast = int if kind == "int" else float
    return Dimension(name, pname, model, kind, low=cast(low), high=cast(high), log=log)


def _objectives(
    value: Any, key: str, known_task: Callable[[str, str], None], known_competence: Callable[[str, str], None], fail
) -> List[Dict[str, Any]]:
    several = isinstance(value, list)
    items = value if several else [value]
    if several and not items:
        fail(key, "list at least one objective")
    out, names = [], set()
    for i, o in enumerate(items):
        k = f"{key}[{i}]" if several else key
        if not isinstance(o, dict):
            fail(k, f"an objective is a mapping {{tasks: {{<task>: weight}}}}, got {o!r}")
        extra = set(o) - {"name", "tasks", "competences"}
        if extra:
            fail(f"{k}.{sorted(extra)[0]}", "unknown key (an objective takes name, tasks and competences)")
        name = o.get("name")
        if several and not name:
            fail(f"{k}.name", "name every objective of a multi-objective search (its column in trials.csv)")
        name = str(name or "objective")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            fail(f"{k}.name", f"{name!r} must be letters, digits, '_', '.', '-'")
        if name in names:
            fail(f"{k}.name", f"two objectives are named {name!r}")
        names.add(name)
        tasks, comps = o.get("tasks") or {}, o.get("competences") or {}
        for part, given in (("tasks", tasks), ("competences", comps)):
            if not isinstance(given, dict):
                fail(f"{k}.{part}", f"a mapping of {part} to weights, got {given!r}")
        if not tasks and not comps:
            fail(f"{k}.tasks", "give harness tasks and/or Holmes competences with weights, e.g. {mmlu: 1.0}")
        for part, given, known in (("tasks", tasks, known_task), ("competences", comps, known_competence)):
            for t, w in given.items():
                known(f"{k}.{part}.{t}", t)
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w == 0:
                    fail(f"{k}.{part}.{t}", f"a weight is a non-zero number, got {w!r}")
        out.append(
            {
                "name": name,
                "tasks": {t: float(w) for t, w in tasks.items()},
                "competences": {c: float(w) for c, w in comps.items()},
            }
        )
    return out


def build_search_plans(
    cfg: dict,
    models: Dict[str, ModelSpec],
    merges: Dict[str, MergeSpec],
    source: str,
    workdir: Path,
    known_task: Callable[[str, str], None],
    known_competence: Callable[[str, str], None],
    check_settings: Callable[[dict, str], None],
) -> Dict[str, SearchPlan]:
    """Every search of the config, checked: its recipe part (models, base, methods) as a recipe
    is, its space against the methods' parameters, its objectives' tasks (``known_task(key,
    task)`` fails on an unknown one)."""
    known: Dict[str, ModelSpec] = dict(models)
    known.update({mid: merge_model_spec(spec, workdir) for mid, spec in merges.items()})
    recipes = {spec.recipe for spec in merges.values()}
    out: Dict[str, SearchPlan] = {}
    for i, s in enumerate(cfg["search"]):
        where = f"search[{i}]"

        def fail(key, msg, where=where):
            raise ConfigError(f"{source}: {where}.{key}: {msg}")

        name = s["name"]
        if name in out:
            fail("name", f"two searches are named {name!r}")
        if name in models or name in recipes or name in merges:
            fail("name", f"{name!r} is also the name of a model or recipe; names must be unique")
        methods = list(s["methods"])
        recipe = {
            "name": name,
            "models": list(s["models"]),
            "base": s.get("base"),
            "methods": methods,
            "parameters": dict(s["parameters"] or {}),
            "method_parameters": {},
            "seeds": [s["seed"]],
            "dtype": s["dtype"],
        }
        r = _recipe(recipe, i, known, source, workdir)
        names = [r.model_ref(f"models[{j}]", n) for j, n in enumerate(recipe["models"])]
        recipe["models"] = names
        if recipe["base"] is not None:
            recipe["base"] = r.model_ref("base", recipe["base"])
        space = s["space"]
        taken = {p.name for m in methods for p in METHODS[m].params}
        for pname in space:
            if pname not in taken:
                fail(
                    f"space.{pname}",
                    f"unknown parameter for {', '.join(methods)}{did_you_mean(pname, sorted(taken))}"
                    + (f" (they take: {', '.join(sorted(taken))})" if taken else " (they take no parameters)"),
                )
            if pname in recipe["parameters"]:
                fail(f"parameters.{pname}", "is also in space: a parameter is either sampled or fixed")
        targets = names + ([recipe["base"]] if recipe["base"] else [])
        taking = {p: [METHODS[m].param(p) for m in methods if METHODS[m].param(p)] for p in space}
        dims = {p: _dimensions_of(f"space.{p}", p, v, targets, taking[p], fail) for p, v in space.items()}
        for p, ds in dims.items():
            if any(d.model for d in ds) and not taking[p][0].per_model:
                fail(f"space.{p}", f"{p} is one value for the whole merge, not per model")
        by_method = {m: [d for p, ds in dims.items() if METHODS[m].param(p) for d in ds] for m in methods}
        plan = SearchPlan(
            name=name,
            index=i,
            recipe=recipe,
            methods=methods,
            dimensions=by_method,
            objectives=_objectives(
                s["objective"],
                "objective",
                lambda k, t, w=where: known_task(f"{w}.{k}", t),
                lambda k, c, w=where: known_competence(f"{w}.{k}", c),
                fail,
            ),
            limit=s["limit"],
            sampler=s["sampler"],
            trials=s["trials"],
            parallel=s["parallel"],
            seed=s["seed"],
            keep_trials=s["keep_trials"],
            dtype=s["dtype"],
        )
        check_settings({"limit": plan.limit}, f"{where}")
        if plan.parallel > plan.trials:
            fail("parallel", f"{plan.parallel} trials per generation, but the search makes {plan.trials} in all")
        if plan.sampler == "cmaes" and len(plan.objectives) > 1:
            fail("sampler", "cmaes optimises one objective: use nsga2, tpe or random for several")
        if plan.sampler == "nsga2" and plan.parallel < 2:
            fail("parallel", "nsga2's population is one generation: give at least 2 trials per generation")
        if plan.sampler == "cmaes" and not any(d.kind != "categorical" for ds in by_method.values() for d in ds):
            fail("sampler", "cmaes samples numbers: give at least one range in space")
        # every method, at the low end of every range (the first choice): the recipe checks
        # (model counts, base, per-model values, required parameters) before any job
        for m in methods:
            probe = {d.name: (d.choices[0] if d.kind == "categorical" else d.low) for d in by_method[m]}
            made = trial_spec(plan, 0, m, probe, known, source, workdir)
            plan.stand_in = plan.stand_in or made
        out[name] = plan
    ids = {mid for p in out.values() for mid in p.trial_ids}
    clash = sorted(ids & (set(models) | set(merges)))
    if clash:
        raise ConfigError(f"{source}: search: trial id {clash[0]!r} is also a model or merge id; rename the search")
    return out


def _recipe(recipe: Dict[str, Any], index: int, known: Dict[str, ModelSpec], source: str, workdir: Path) -> Recipe:
    r = Recipe(index, recipe, known, source, workdir)
    r.where = f"{source}: search[{index}]"
    return r


def trial_spec(
    plan: SearchPlan,
    number: int,
    method: str,
    values: Dict[str, Any],
    known: Dict[str, ModelSpec],
    source: str,
    workdir: Path,
) -> MergeSpec:
    """The merge of one trial: the search's recipe with one method and the sampled values."""
    recipe = dict(plan.recipe, methods=[method], parameters=plan.parameters(method, values))
    r = _recipe(recipe, plan.index, known, source, workdir)
    (spec,) = r.expand_method(METHODS[method], recipe["models"], recipe["base"])
    return dataclasses.replace(spec, id=plan.trial_id(number), recipe=plan.name, swept=())


def read_proposals(path: Path) -> Dict[int, Dict[str, Any]]:
    """A generation's proposals.json: trial number -> {model, method, values}."""
    with open(path, encoding="utf-8") as fh:
        return {t["number"]: t for t in json.load(fh)["trials"]}


def read_best(path: Path) -> List[str]:
    """The merge ids of best.yaml's trials (the best trial, or the Pareto set)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    return [b["model"] for b in doc.get("best") or []]
