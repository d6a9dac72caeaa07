"""The storage plan (storage.keep_merges): which merges' weights are deleted once every job that
reads them has finished, and what the DAG does about it. Read from the config and, for merges
whose weights are gone already, from the disk, once, when the plan is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple

from mergelab.plan import paths


@dataclass(frozen=True)
class StoragePlan:
    keep_merges: str  # all, pushed or none
    released: Tuple[str, ...]  # merges (and search trials) whose weights are deleted after their readers
    deleted_dirs: FrozenSet[str]  # their directories, and best trials' merged again: inputs made ancient
    best_released: bool  # a search's best trials, merged again for their full evaluation, are deleted after it
    conflict: Optional[str]  # why a merge still to be made cannot be (it reads deleted weights), else None

    @property
    def reader_priority(self) -> int:
        """Jobs that read merged weights run before new merges are made, when weights are deleted."""
        return 1 if self.released else 0


def read_by_merges(merges) -> Dict[str, List[str]]:
    """merge id -> the merges of the config that read it (merges of merges)."""
    out: Dict[str, List[str]] = {}
    for mid, spec in merges.items():
        for name in spec.inputs:
            if name in merges:
                out.setdefault(name, []).append(mid)
    return out


def build_storage_plan(keep: str, merges, pushed, searches, workdir: Path) -> StoragePlan:
    """The merges whose weights are deleted once every job that reads them has finished
    (``keep``: the ``pushed`` ones with `pushed`, every one with `none`), but for a merge that
    another merge reads, which keeps them; and a merge whose weights are gone already (its record
    is there, its directory is not), whatever keep_merges says now. Their card, mergekit config
    and checksums stay (paths.MERGE_RECORD). A search's trials, unless it keeps them, are deleted
    once their dev evaluation is done."""

    def on_disk(template: str, name: str) -> bool:
        return (workdir / template.format(model=name)).exists()

    readers = read_by_merges(merges)
    released = []
    for m in merges:
        by_config = keep == "none" or (keep == "pushed" and m in pushed)
        if by_config and m not in readers:
            released.append(m)
        elif on_disk(paths.MERGE_RECORD, m) and not on_disk(paths.MERGED_MODEL, m):
            released.append(m)
    released += [t for plan in searches.values() if not plan.keep_trials for t in plan.trial_ids]
    dirs = {paths.MERGED_MODEL.format(model=m) for m in released}
    best_released = keep != "all"
    if best_released:
        dirs |= {
            paths.SEARCH_BEST_MODEL.format(search=p.name, model=t)
            for p in searches.values()
            if not p.keep_trials
            for t in p.trial_ids
        }
    conflict = None
    for m in released:  # making deleted weights again for a new merge would rerun every evaluation of m
        for child in readers.get(m, []):
            if conflict is None and not on_disk(paths.MERGED_MODEL, child) and not on_disk(paths.MERGE_RECORD, child):
                made = paths.MERGED_MODEL.format(model=m)
                conflict = (
                    f"merge {child} reads {m}, whose weights were deleted (storage.keep_merges); "
                    f"bring them back first with `snakemake {made}` (nothing that read them reruns), then run again"
                )
    return StoragePlan(keep, tuple(released), frozenset(dirs), best_released, conflict)
