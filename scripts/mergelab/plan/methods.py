"""The merge methods of mergekit 0.1.5, described without importing mergekit.

The workflow checks every recipe against this table while Snakemake builds the
DAG, where importing mergekit (10-14 s) is not acceptable.  A test compares the
table with mergekit's own registry, so an upgrade that changes a method's
contract or parameters fails loudly instead of producing wrong configs.

Each method lists
- its input contract (base policy and input counts, as mergekit counts them:
  the base, when the method uses one, is one of the inputs);
- its parameters: scope (``shared`` for the whole merge, ``input`` for every
  input model, ``non_base`` for every input but the base), type, mergekit's
  default (``REQUIRED`` when mergekit has none) and the range we accept;
- ``defaults``: the values mergelab uses when a recipe says nothing, chosen so
  that ``methods: [linear, slerp, ties, dare_ties, task_arithmetic]`` works
  untuned.  They appear in merge ids, so a merge's id always shows the values
  it was made with;
- whether the method is random (its result depends on the seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

REQUIRED = "<required>"


@dataclass(frozen=True)
class Param:
    name: str
    scope: str  # shared | input | non_base
    type: type  # float | int | bool
    default: Any = REQUIRED
    abbrev: str = ""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # True: value must be > low (else >= low)
    high_open: bool = False

    @property
    def required(self) -> bool:
        return self.default == REQUIRED

    @property
    def per_model(self) -> bool:
        return self.scope in ("input", "non_base")

    def check(self, value: Any) -> Optional[str]:
        """Return a problem with ``value`` for this parameter, or None."""
        if self.type is bool:
            if not isinstance(value, bool):
                return f"must be true or false, got {value!r}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if self.type is int and not float(value).is_integer():
            return f"must be a whole number, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'>' if self.low_open else '>='} {self.low:g}, got {value!r}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"must be {'<' if self.high_open else '<='} {self.high:g}, got {value!r}"
        return None


@dataclass(frozen=True)
class Method:
    name: str
    base: str  # required | optional | ignored
    min_inputs: int = 1
    max_inputs: Optional[int] = None
    min_non_base: Optional[int] = None
    max_non_base: Optional[int] = None
    params: Tuple[Param, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    random: bool = False

    def param(self, name: str) -> Optional[Param]:
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def param_names(self) -> Tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def pair_with_base(self) -> bool:
        """Methods over exactly two inputs of which the base is one (slerp...)."""
        return self.base == "required" and self.min_inputs == 2 and self.max_inputs == 2


def _p(name, scope, type_, default=REQUIRED, abbrev="", low=None, high=None, low_open=False, high_open=False):
    return Param(name, scope, type_, default, abbrev, low, high, low_open, high_open)


# Parameters shared by the generalized task-arithmetic family.
def _gta(normalize: bool, rescale: bool, extra=()):
    return (
        _p("int8_mask", "shared", bool, False, "i8"),
        _p("normalize", "shared", bool, normalize, "nm"),
        _p("rescale", "shared", bool, rescale, "rs"),
        _p("lambda", "shared", float, 1.0, "l", low=0.0),
        _p("weight", "non_base", float, REQUIRED, "w"),
        _p("density", "non_base", float, 1.0, "d", low=0.0, high=1.0, low_open=True),
    ) + tuple(extra)


_GAMMA = _p("gamma", "non_base", float, 0.01, "g", low=0.0, high=1.0, high_open=True)
_EPSILON = _p("epsilon", "non_base", float, 0.15, "e", low=0.0, high=1.0, high_open=True)

_TV = dict(base="required", min_inputs=1)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "linear",
            base="ignored",
            params=(
                _p("weight", "input", float, REQUIRED, "w"),
                _p("normalize", "shared", bool, True, "nm"),
            ),
            defaults={"weight": 1.0},
        ),
        Method(
            "slerp",
            base="required",
            min_inputs=2,
            max_inputs=2,
            params=(_p("t", "shared", float, REQUIRED, "t", low=0.0, high=1.0),),
            defaults={"t": 0.5},
        ),
        Method(
            "nuslerp",
            base="optional",
            min_non_base=2,
            max_non_base=2,
            params=(
                _p("weight", "non_base", float, REQUIRED, "w"),
                _p("nuslerp_row_wise", "shared", bool, False, "rw"),
                _p("nuslerp_flatten", "shared", bool, True, "fl"),
            ),
            defaults={"weight": 0.5},
        ),
        Method(
            "multislerp",
            base="optional",
            min_non_base=1,
            params=(
                _p("weight", "non_base", float, REQUIRED, "w"),
                _p("normalize_weights", "shared", bool, True, "nw"),
                _p("eps", "shared", float, 1e-08, "eps", low=0.0, low_open=True),
            ),
            defaults={"weight": 1.0},
        ),
        Method(
            "karcher",
            base="ignored",
            params=(
                _p("max_iter", "shared", int, 10, "it", low=1),
                _p("tol", "shared", float, 1e-05, "tol", low=0.0, low_open=True),
            ),
        ),
        Method(
            "passthrough",
            base="ignored",
            max_inputs=1,
            params=(_p("scale", "input", float, None, "sc"),),
        ),
        Method(
            "model_stock",
            base="required",
            min_inputs=3,
            params=(_p("filter_wise", "shared", bool, False, "fw"),),
        ),
        Method(
            "nearswap",
            base="required",
            min_inputs=2,
            max_inputs=2,
            params=(_p("t", "shared", float, REQUIRED, "t", low=0.0, low_open=True),),
            defaults={"t": 0.0001},
        ),
        Method("arcee_fusion", base="required", min_inputs=2, max_inputs=2),
        Method(
            "sce",
            **_TV,
            params=(
                _p("int8_mask", "shared", bool, False, "i8"),
                _p("select_topk", "shared", float, 1.0, "k", low=0.0, high=1.0, low_open=True),
            ),
        ),
        Method(
            "ram",
            **_TV,
            params=(_p("epsilon", "shared", float, 1e-05, "e", low=0.0, low_open=True),),
        ),
        Method(
            "ramplus_tl",
            **_TV,
            params=(
                _p("r", "shared", float, 0.1, "r", low=0.0, high=1.0),
                _p("alpha", "shared", float, 0.2, "a", low=0.0),
                _p("epsilon", "shared", float, 1e-05, "e", low=0.0, low_open=True),
            ),
        ),
        Method("task_arithmetic", **_TV, params=_gta(False, False), defaults={"weight": 0.5}),
        Method("ties", **_TV, params=_gta(True, False), defaults={"weight": 0.5, "density": 0.5}),
        Method(
            "dare_ties",
            **_TV,
            params=_gta(False, True),
            defaults={"weight": 0.5, "density": 0.5},
            random=True,
        ),
        Method(
            "dare_linear",
            **_TV,
            params=_gta(False, True),
            defaults={"weight": 0.5, "density": 0.5},
            random=True,
        ),
        Method(
            "breadcrumbs",
            **_TV,
            params=_gta(False, False, (_GAMMA,)),
            defaults={"weight": 0.5, "density": 0.9, "gamma": 0.01},
        ),
        Method(
            "breadcrumbs_ties",
            **_TV,
            params=_gta(False, False, (_GAMMA,)),
            defaults={"weight": 0.5, "density": 0.9, "gamma": 0.01},
        ),
        Method(
            "della",
            **_TV,
            params=_gta(True, True, (_EPSILON,)),
            defaults={"weight": 0.5, "density": 0.5, "epsilon": 0.1},
            random=True,
        ),
        Method(
            "della_linear",
            **_TV,
            params=_gta(False, True, (_EPSILON,)),
            defaults={"weight": 0.5, "density": 0.5, "epsilon": 0.1},
            random=True,
        ),
    )
}


# Order of parameters in merge ids: by abbreviation, so ids read the same for
# every method ("d0.5_w0.5").
def id_order(method: Method, names) -> list:
    return sorted(names, key=lambda n: method.param(n).abbrev)


def check_pair(method: Method, values: Mapping[str, Any]) -> Optional[str]:
    """Cross-parameter constraints mergekit enforces only deep inside a merge."""
    if method.name in ("della", "della_linear"):
        d, e = values.get("density", 1.0), values.get("epsilon", 0.15)
        if d < 1 and not (0 < d - e and d + e < 1):
            return f"density ± epsilon must lie in (0, 1), got density={d:g}, epsilon={e:g}"
    return None
