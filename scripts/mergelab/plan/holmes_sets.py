"""The Holmes probing sets as the plan sees them: the built-in versions, the dataset -> competence
catalogue (workflow/holmes/probes.csv) and the user's own mapping, and which datasets a version folder
or archive holds, without reading any samples. The jobs that obtain and read the data
(mergelab.evaluate.holmes_data) build on it."""

from __future__ import annotations

import csv
import fnmatch
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

from mergelab.runtime.jobs import JobError

BUILTIN_VERSIONS = ("flash-holmes", "holmes", "demo")
DATASET_FILES = ("config-none.yaml", "samples.csv")  # a folder holding either is a dataset
UNKNOWN = "unknown"  # competence and phenomenon of a dataset no mapping knows
METADATA = Path(__file__).resolve().parents[3] / "workflow" / "holmes" / "probes.csv"


class DataError(JobError):
    """A problem in the probing data; the message names the file (and line)."""


def metadata(path: Path = METADATA) -> Dict[str, Dict[str, str]]:
    """probing_dataset -> {competence, phenomenon, versions}."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["probing_dataset"]: r for r in csv.DictReader(fh)}


def datasets_of_version(version: str, meta: Optional[dict] = None) -> List[str]:
    meta = meta or metadata()
    return [name for name, r in meta.items() if version in r["versions"].split(",")]


def read_probes(path: Path) -> Dict[str, Dict[str, str]]:
    """The user's mapping (holmes.data.probes): probing_dataset -> {competence, phenomenon}.

    A CSV with the columns of workflow/holmes/probes.csv (probing_dataset, competence,
    phenomenon; versions is not needed). An empty competence or phenomenon is UNKNOWN."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("probing_dataset", "competence", "phenomenon") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)} (as in workflow/holmes/probes.csv)")
            out: Dict[str, Dict[str, str]] = {}
            for n, rec in enumerate(reader, start=2):
                name = (rec["probing_dataset"] or "").strip()
                if not name:
                    raise DataError(f"{path} line {n}: probing_dataset is empty")
                if name in out:
                    raise DataError(f"{path} line {n}: {name!r} is listed twice")
                out[name] = {k: (rec[k] or "").strip() or UNKNOWN for k in ("competence", "phenomenon")}
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from None
    return out


def _is_dataset(folder: Path) -> bool:
    return folder.is_dir() and not folder.name.startswith(".") and any((folder / f).is_file() for f in DATASET_FILES)


def find_datasets(folder: Path) -> List[str]:
    """The datasets of a version folder: its subfolders holding a Holmes file, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if _is_dataset(p))


def zip_datasets(archive: Path) -> List[str]:
    """The datasets unpack() would take from archive (its member list only; nothing is unpacked)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        raise DataError(f"{archive}: not a zip archive") from None
    found = set()
    for member in members:
        parts = Path(member).parts
        if 2 <= len(parts) <= 3 and parts[-1] in DATASET_FILES and not parts[-2].startswith("."):
            found.add(parts[-2])
    return sorted(found)


def select(names: List[str], patterns: Optional[List[str]]) -> List[str]:
    if patterns is None:
        return list(names)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
