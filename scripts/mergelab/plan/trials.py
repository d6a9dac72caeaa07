"""The one reader of what a merge search's checkpoints wrote: which merge id is which search's
trial, each trial's merge from its generation's proposals.json (read again when that file
changes), and each finished search's best trials (best.yaml). The Experiment asks it; nothing it
reads changes a built plan (mergelab.plan.experiment.Experiment.with_best_trials makes a new view).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mergelab.plan import paths
from mergelab.plan.models import MergeSpec, ModelSpec, merge_model_spec
from mergelab.plan.search import SearchPlan, read_best, read_proposals, trial_spec


@dataclass(frozen=True, eq=False)
class Trials:
    searches: Dict[str, SearchPlan]
    models: Dict[str, ModelSpec]  # what a search's recipe may name: the parents ...
    merges: Dict[str, MergeSpec]  # ... and the merges, as models
    source: str
    workdir: Path
    _read: Dict[str, Tuple[int, MergeSpec]] = field(default_factory=dict, repr=False)  # id -> (mtime, merge)

    def find(self, name: str) -> Optional[Tuple[SearchPlan, int]]:
        """(the search, the trial number) when ``name`` is a trial's merge id, else None."""
        search, sep, number = name.rpartition("_t")
        plan = self.searches.get(search) if sep and number.isdigit() else None
        if plan is None or plan.trial_id(int(number)) != name or int(number) >= plan.trials:
            return None
        return plan, int(number)

    @property
    def ids(self) -> List[str]:
        """Every search's trials' merge ids."""
        return [t for p in self.searches.values() for t in p.trial_ids]

    def proposals_file(self, name: str) -> str:
        """The proposals.json that gives trial ``name`` its parameters."""
        plan, number = self.find(name)
        return plan.proposals(plan.generation_of(number))

    def proposed(self, name: str) -> bool:
        return (self.workdir / self.proposals_file(name)).is_file()

    def spec(self, name: str, estimate: bool = False) -> MergeSpec:
        """Trial ``name``'s merge, from its generation's proposals. ``estimate``: before they are
        written, its search's first method at the low end of its space, which reads the same
        models (resource estimates only)."""
        plan, number = self.find(name)
        path = self.workdir / self.proposals_file(name)
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            if estimate:
                return plan.stand_in
            raise ValueError(f"trial {name} of search {plan.name} is not proposed yet ({path} is missing)") from None
        cached = self._read.get(name)
        if cached and cached[0] == stamp:
            return cached[1]
        t = read_proposals(path).get(number)
        if t is None:
            raise ValueError(
                f"{path} lacks trial {number}: delete results/search/{plan.name}/ to start the search again"
            )
        spec = trial_spec(plan, number, t["method"], t["values"], self._readable, self.source, self.workdir)
        self._read[name] = stamp, spec
        return spec

    @cached_property
    def _readable(self) -> Dict[str, ModelSpec]:
        return {**self.models, **{mid: merge_model_spec(spec, self.workdir) for mid, spec in self.merges.items()}}

    def best(self) -> Dict[str, Tuple[str, ...]]:
        """search -> its best trials, for every search whose best.yaml (checkpoint search_summary) is written."""
        out = {}
        for s in self.searches:
            path = self.workdir / paths.SEARCH_BEST.format(search=s)
            if path.is_file():
                out[s] = tuple(m for m in read_best(path) if self.find(m))
        return out
