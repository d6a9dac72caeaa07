"""Merges whose weights are deleted (storage.keep_merges): their record, and the check that a
merge made again has the bytes that were evaluated.

The record (paths.MERGE_RECORD, rule merge_record) keeps what a reader of the campaign needs
once the weights are gone: the model card, the mergekit config, and weights.json, every file
of the merge with its size and sha256. Made again (`snakemake results/models/<id>`), the merge
is compared with it file by file (check_against_record, called by the merge job).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, Optional

from mergelab.plan import paths
from mergelab.runtime.jobs import JobError, atomic_dir

log = logging.getLogger("mergelab")

# what a record keeps of the merge's files besides their checksums: small texts a reader needs
KEPT = ("README.md", "mergekit_config.yml", "mergekit_moe_config.yml")
WEIGHTS = "weights.json"
CHUNK = 16 << 20
SNAKEMAKE_MARKERS = (".snakemake_timestamp",)  # Snakemake's, in every directory output


def sha256(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def digests(model_dir: os.PathLike) -> Dict[str, Dict[str, object]]:
    """Every file under ``model_dir`` (relative POSIX path, sorted) -> its bytes and sha256;
    Snakemake's marker of a directory output aside."""
    root = Path(model_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in SNAKEMAKE_MARKERS)
    return {p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files}


def write_record(model: str, model_dir: os.PathLike, record_dir: os.PathLike) -> Dict[str, object]:
    """The record of merge ``model`` from its directory, written atomically; returns weights.json's content."""
    src = Path(model_dir)
    if not src.is_dir():
        raise JobError(f"{src}: the merge's directory is missing; cannot record it")
    files = digests(src)
    record = {
        "model": model,
        "files": files,
        "total_bytes": sum(int(f["bytes"]) for f in files.values()),
        "restore": f"snakemake {paths.MERGED_MODEL.format(model=model)}",
    }
    with atomic_dir(record_dir) as tmp:
        for name in KEPT:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        (tmp / WEIGHTS).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log.info("recorded %s: %d files, %d bytes", model, len(files), record["total_bytes"])
    return record


def read_record(model: str, workdir: os.PathLike = ".") -> Optional[Dict[str, object]]:
    """weights.json of merge ``model``'s record, or None when it has none (or an unreadable one)."""
    path = Path(workdir) / paths.MERGE_RECORD_WEIGHTS.format(model=model)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _config_name(model_dir: Path) -> Optional[str]:
    return next((n for n in KEPT[1:] if (model_dir / n).is_file()), None)


def check_against_record(model: str, made: os.PathLike, workdir: os.PathLike = ".") -> Optional[bool]:
    """A merge made again where a record of it exists (its weights were deleted): compare the
    files just made (``made``) with the record, and say in the log. None: nothing to compare
    (no record, or a record of another mergekit config); True: the same bytes (the card aside);
    False: some differ, named in a warning. Not an error: a parent changed in place (a demo
    model trained again) makes the same config give other bytes, and then the record and the
    evaluations are made again after the merge, as they should be."""
    record = read_record(model, workdir)
    made = Path(made)
    if record is None:
        return None
    rec_dir = Path(workdir) / paths.MERGE_RECORD.format(model=model)
    name = _config_name(made)
    if name is None or not (rec_dir / name).is_file() or (rec_dir / name).read_bytes() != (made / name).read_bytes():
        log.info("the record of %s is of another mergekit config: not compared", model)
        return None
    now = digests(made)
    then = record.get("files") or {}
    differ = sorted(f for f in set(now) | set(then) if f != "README.md" and now.get(f) != then.get(f))
    if differ:
        log.warning(
            "%s made again: its files differ from its record %s (%s%s). If its parents changed, "
            "the record and its evaluations are made again after it; if they did not (a restore), "
            "another mergekit, torch or device made other bytes than those the results were computed from",
            model,
            rec_dir / WEIGHTS,
            ", ".join(differ[:5]),
            " ..." if len(differ) > 5 else "",
        )
        return False
    log.info("%s made again: %d files, byte-identical to its record %s", model, len(now), rec_dir / WEIGHTS)
    return True
