"""Holmes / Flash-Holmes probing data: obtain it, read it, validate it.

Layout: <root>/<version>/<dataset>/{config-none.yaml, samples.csv}; samples.csv
has the columns id, inputs (a Python-literal list), context (empty or a
literal list of strings), label, set-0 (train/dev/test). Literals are parsed
with ast.literal_eval, never eval. Every problem is one DataError naming the
file and line.

A version is one of BUILTIN_VERSIONS or the name of the user's own set, in the
same layout; a dataset is any folder holding one of DATASET_FILES, whether or
not workflow/holmes/probes.csv knows it (those it does not know get their
competence from the user's mapping, holmes.data.probes, else UNKNOWN).
"""

from __future__ import annotations

import ast
import csv
import logging
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from mergelab.embedded.holmes_demo import write_demo_set
from mergelab.plan.holmes_sets import BUILTIN_VERSIONS, DATASET_FILES, DataError, find_datasets, metadata, select

log = logging.getLogger("mergelab.holmes")

PROBE_TASK_TYPES = (
    "SENTENCE",
    "SENTENCE_PAIR_BI",
    "SENTENCE_PAIR_CROSS",
    "SENTENCE_TOKENS",
    "SENTENCE_PAIR_TOKENS_BI",
    "SENTENCE_SPANS",
)
TOKEN_TYPES = ("SENTENCE_TOKENS", "SENTENCE_PAIR_TOKENS_BI", "SENTENCE_SPANS")
SPLITS = ("train", "dev", "test")
ARCHIVES = {
    "flash-holmes": "https://drive.google.com/file/d/1VK3xR_ZMQUBIRgY8JElHlqtxGsgLTWm3/view?usp=sharing",
    "holmes": "https://drive.google.com/file/d/1sStwl0dFrg7GnyQ4SqBOTbfH93EArnqJ/view?usp=sharing",
}

csv.field_size_limit(1 << 30)


@dataclass
class Row:
    id: str
    inputs: list
    context: Optional[list]
    label: Any
    split: str


@dataclass
class ProbeDataset:
    name: str
    path: Path
    probe_task_type: str
    num_labels: int
    rows: List[Row] = field(default_factory=list)
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def regression(self) -> bool:
        return self.num_labels == 1

    @property
    def samples_path(self) -> Path:
        """Its samples file: samples.csv, or the name config-none.yaml gives (probes_samples_path)."""
        return self.path / Path(self.config.get("probes_samples_path") or "samples.csv").name

    def split(self, name: str) -> List[Row]:
        return [r for r in self.rows if r.split == name]


# --------------------------------------------------------------------------- metadata


def read_manifest(path: str) -> List[Dict[str, str]]:
    """The rows of a manifest (results/holmes/datasets-<version>.tsv); none when it is not there."""
    if not path or not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


# --------------------------------------------------------------------------- finding


def _dataset_dirs(top: Path) -> List[Path]:
    """Dataset folders at most two levels below top (an archive may wrap them in one folder)."""
    found = []
    for name in DATASET_FILES:
        for pattern in (f"*/{name}", f"*/*/{name}"):
            found.extend(p.parent for p in top.glob(pattern) if not p.parent.name.startswith("."))
    return sorted(set(found))


def resolve_datasets(folder: Path, wanted: Optional[List[str]]) -> List[str]:
    """The datasets to probe in folder: every one found (wanted None), else each name of
    wanted (which must be there) and every match of each shell-style pattern of it."""
    found = find_datasets(folder)
    if wanted is None:
        return found
    out: List[str] = []
    for entry in wanted:
        hits = select(found, [entry]) if any(c in entry for c in "*?[") else [entry]
        if not hits:
            raise DataError(f"{folder}: holmes.datasets pattern {entry!r} matches no dataset there")
        out.extend(h for h in hits if h not in out)
    return out


def unpack(archive: Path, dest: Path) -> None:
    """Unpack a Holmes zip so that dest/<dataset>/config-none.yaml exist; atomic."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(
            f"{archive}: not a zip archive (a failed download saves an HTML page; delete it and retry)"
        ) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zf:
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if not str(target).startswith(str(tmp.resolve()) + os.sep) and target != tmp.resolve():
                    raise DataError(f"{archive}: refuses to unpack {member!r} outside the data folder")
            zf.extractall(tmp)
        dirs = _dataset_dirs(tmp)
        if not dirs:
            raise DataError(f"{archive}: no dataset folder with a config-none.yaml inside")
        staged = tmp / "__datasets__"
        staged.mkdir()
        for d in dirs:
            os.replace(d, staged / d.name)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(url: str, target: Path) -> None:
    """Fetch url to target (Google Drive links through gdown); atomic."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".partial")
    try:
        if "drive.google.com" in url:
            import gdown

            got = gdown.download(url=url, output=str(part), fuzzy=True, quiet=True)
            if not got or not part.exists():
                raise OSError("gdown returned nothing")
        else:
            import urllib.request

            with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def obtain(version: str, root: Path, archive: Optional[Path] = None, url: Optional[str] = None) -> Path:
    """The folder <root>/<version> with the datasets, unpacking or downloading them if needed."""
    dest = root / version
    if version == "demo":
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".demo.", dir=root))
        try:
            write_demo_set(tmp)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
    if dest.is_dir() and _dataset_dirs(dest):
        log.info("using the datasets in %s", dest)
        return dest
    zip_path = archive or root / f"{version}.zip"
    if not zip_path.is_file():
        if archive is not None:
            raise DataError(f"holmes archive not found: {archive}")
        source = url or ARCHIVES.get(version)
        if not source:
            raise DataError(f"no datasets in {dest}, no archive at {zip_path} and no URL to download {version!r} from")
        log.info("downloading %s from %s", version, source)
        try:
            download(source, zip_path)
        except Exception as e:  # noqa: BLE001 - any failure: tell the user what to do instead
            raise DataError(
                f"could not download the {version} archive ({type(e).__name__}: {str(e).strip()[:200]}); "
                f"offline, download it elsewhere from {source} and put it at {zip_path} "
                f"(or unpack it into {dest}/), then rerun"
            ) from None
    log.info("unpacking %s into %s", zip_path, dest)
    unpack(zip_path, dest)
    return dest


# --------------------------------------------------------------------------- reading


def _literal(text: str, what: str, where: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataError(f"{where}: {what} is not a Python literal: {text[:80]!r}") from None


def _check_inputs(inputs, context, ptt: str, where: str) -> None:
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise DataError(f"{where}: inputs must be a non-empty list, got {inputs!r:.80}")
    if ptt == "SENTENCE":
        if len(inputs) != 1 or not isinstance(inputs[0], str):
            raise DataError(f"{where}: {ptt} inputs must be [sentence], got {inputs!r:.80}")
    elif ptt in ("SENTENCE_PAIR_BI", "SENTENCE_PAIR_CROSS"):
        if len(inputs) != 2 or not all(isinstance(s, str) for s in inputs):
            raise DataError(f"{where}: {ptt} inputs must be [sentence, sentence], got {inputs!r:.80}")
    else:
        if not isinstance(context, (list, tuple)) or not context or not all(isinstance(c, str) for c in context):
            raise DataError(f"{where}: {ptt} needs context, a list of sentences, got {context!r:.80}")
        width = 5 if ptt == "SENTENCE_SPANS" else 4
        for el in inputs:
            if not isinstance(el, (list, tuple)) or len(el) < width:
                raise DataError(
                    f"{where}: {ptt} input elements are (token, context index, start, end"
                    f"{', span id' if width == 5 else ''}), got {el!r:.80}"
                )
            _, ci, start, end = el[:4]
            if not (isinstance(ci, int) and 0 <= ci < len(context)):
                raise DataError(f"{where}: context index {ci!r} out of range (context has {len(context)})")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(context[ci])):
                raise DataError(
                    f"{where}: character span ({start}, {end}) outside context[{ci}] of length {len(context[ci])}"
                )


def read_dataset(folder: Path) -> ProbeDataset:
    """Read and validate one dataset folder."""
    folder = Path(folder)
    cfg_path = folder / "config-none.yaml"
    if not cfg_path.is_file():
        raise DataError(f"{folder}: missing config-none.yaml")
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{cfg_path}: not valid YAML: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{cfg_path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(cfg, dict):
        raise DataError(f"{cfg_path}: expected a mapping of keys")
    ptt = cfg.get("probe_task_type")
    if ptt not in PROBE_TASK_TYPES:
        raise DataError(f"{cfg_path}: unknown probe_task_type {ptt!r} (known: {', '.join(PROBE_TASK_TYPES)})")
    k = cfg.get("num_labels")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise DataError(f"{cfg_path}: num_labels must be a whole number >= 1 (1 = regression), got {k!r}")
    ds = ProbeDataset(folder.name, folder, ptt, k, config=cfg)
    samples = ds.samples_path
    if not samples.is_file():
        raise DataError(f"{folder}: missing {samples.name}")
    try:
        _read_samples(ds, samples)
    except UnicodeDecodeError as e:
        raise DataError(f"{samples}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{samples}: not a readable CSV ({e})") from None
    for split in SPLITS:
        if not any(r.split == split for r in ds.rows):
            raise DataError(f"{samples}: the {split} split has no rows")
    return ds


def _read_samples(ds: ProbeDataset, samples: Path) -> None:
    ptt, k = ds.probe_task_type, ds.num_labels
    with open(samples, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("inputs", "label", "set-0") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{samples}: missing column(s) {', '.join(missing)}")
        widths = set()
        for n, rec in enumerate(reader, start=2):
            where = f"{samples} line {n}"
            inputs = _literal(rec["inputs"] or "", "inputs", where)
            ctx_text = (rec.get("context") or "").strip()
            context = _literal(ctx_text, "context", where) if ctx_text and ctx_text.lower() != "nan" else None
            _check_inputs(inputs, context, ptt, where)
            if ptt in TOKEN_TYPES:
                widths.add(len({el[4] for el in inputs}) if ptt == "SENTENCE_SPANS" else len(inputs))
                if len(widths) > 1:
                    raise DataError(
                        f"{where}: rows have different numbers of elements ({sorted(widths)}); "
                        "their features could not be concatenated"
                    )
            raw = (rec["label"] or "").strip()
            try:
                value = float(raw)
            except ValueError:
                raise DataError(f"{where}: label {raw!r} is not a number") from None
            if k == 1:
                if not math.isfinite(value):
                    raise DataError(f"{where}: regression label {raw!r} is not finite")
                label: Any = value
            else:
                if not value.is_integer() or not 0 <= value < k:
                    raise DataError(f"{where}: label {raw!r} out of range for num_labels {k} (0..{k - 1})")
                label = int(value)
            split = (rec["set-0"] or "").strip()
            if split not in SPLITS:
                raise DataError(f"{where}: set-0 {split!r} is not train, dev or test")
            ds.rows.append(Row(rec.get("id") or str(n - 2), list(inputs), context, label, split))


def manifest_rows(folder: Path, names: List[str], meta: Optional[dict] = None) -> List[Dict[str, Any]]:
    """Validate the named datasets of folder; one summary row each."""
    meta = meta or metadata()
    rows = []
    for name in names:
        path = folder / name
        if not path.is_dir():
            raise DataError(
                f"{folder}: dataset {name!r} is missing"
                + (
                    f" (datasets of your own: give them a version name of their own, in {folder.parent}/<name>/)"
                    if folder.name in BUILTIN_VERSIONS
                    else ""
                )
            )
        ds = read_dataset(path)
        m = meta.get(name, {})
        rows.append(
            {
                "probing_dataset": name,
                "probe_task_type": ds.probe_task_type,
                "num_labels": ds.num_labels,
                "n_train": len(ds.split("train")),
                "n_dev": len(ds.split("dev")),
                "n_test": len(ds.split("test")),
                "competence": m.get("competence", ""),
                "phenomenon": m.get("phenomenon", ""),
            }
        )
    return rows
