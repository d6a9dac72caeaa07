"""The sanity plan (sanity:): which models get a cheap check before their evaluations, and what a
failed check does. Built once, from the config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Tuple

from mergelab.plan import paths


@dataclass(frozen=True)
class SanityPlan:
    activate: bool
    on_fail: str  # skip | evaluate | stop
    max_ppl_ratio: float
    checked: Tuple[str, ...]  # the models with a check, in config order
    checked_merges: FrozenSet[str]  # those whose evaluations wait for their check

    def check_input(self, name: str) -> List[str]:
        """The check an evaluation job of ``name`` waits for: a merge's, when checks are on."""
        return [paths.CHECK.format(model=name)] if name in self.checked_merges else []


def build_sanity_plan(section: Dict[str, Any], evaluated: List[str], models, merges) -> SanityPlan:
    """Every evaluated merge is checked, and what each checked merge reads (its parents' checks
    are its reference), down to the parents; nothing when sanity.activate is off."""
    seen: List[str] = []
    todo = [m for m in evaluated if m in merges] if section["activate"] else []
    while todo:
        m = todo.pop(0)
        if m in seen:
            continue
        seen.append(m)
        if m in merges:
            todo += merges[m].inputs
    checked = tuple(m for m in list(models) + list(merges) if m in seen)
    return SanityPlan(
        activate=bool(section["activate"]),
        on_fail=section["on_fail"],
        max_ppl_ratio=float(section["max_ppl_ratio"]),
        checked=checked,
        checked_merges=frozenset(m for m in checked if m in merges),
    )
