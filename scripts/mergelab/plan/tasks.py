"""Which lm-eval task names exist, known while Snakemake builds the DAG.

- Task folders (the workflow's own workflow/tasks/ and the user's include_path)
  are scanned as YAML: a few milliseconds, no lm-eval import.
- lm-eval's built-in names (~14,700, ~12 s to index) are listed once per
  lm-eval version by a subprocess and cached under ~/.cache/mergelab/, so a
  typo in a task name is caught by `snakemake -n`, before any GPU job, while a
  no-op DAG build stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Dict, Iterable, Optional

import yaml


class _TolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads lm-eval's `!function module.name` tags as plain strings."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def scan_task_dirs(dirs: Iterable[os.PathLike]) -> Dict[str, str]:
    """name -> kind (task | group | tag) for every task YAML below dirs."""
    found: Dict[str, str] = {}
    for d in dirs:
        for path in sorted(Path(d).rglob("*.yaml")):
            try:
                with open(path, encoding="utf-8") as fh:
                    doc = yaml.load(fh, Loader=_TolerantLoader)
            except (yaml.YAMLError, OSError):
                continue  # lm-eval reports broken files itself, with their path
            if not isinstance(doc, dict):
                continue
            if isinstance(doc.get("group"), str):
                found[doc["group"]] = "group"
            elif isinstance(doc.get("task"), str):
                found[doc["task"]] = "task"
            tags = doc.get("tag") or []
            for tag in [tags] if isinstance(tags, str) else tags:
                if isinstance(tag, str):
                    found.setdefault(tag, "tag")
    return found


class _MarkingLoader(yaml.SafeLoader):
    """SafeLoader that reads lm-eval's `!function module.name` tags as "!function module.name"."""


_MarkingLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix} {getattr(node, 'value', '')}")

# datasets' packaged builders: a task naming one of these reads local files (data_files)
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder", "webdataset"}


def _read_task_docs(dirs: Iterable[os.PathLike]) -> Dict[str, list]:
    """name -> the YAML documents defining it (a task, a group, or every task of a tag), with
    `include:` files merged in (lm-eval's way: the including file wins)."""

    def load(path: Path, depth: int = 0) -> Optional[dict]:
        try:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.load(fh, Loader=_MarkingLoader)
        except (yaml.YAMLError, OSError):
            return None
        if not isinstance(doc, dict):
            return None
        inc = doc.get("include")
        if isinstance(inc, str) and depth < 5:
            base = load(path.parent / inc, depth + 1)
            if base is not None:
                doc = {**base, **{k: v for k, v in doc.items() if k != "include"}}
        return doc

    found: Dict[str, list] = {}
    for d in dirs:
        for path in sorted(Path(d).rglob("*.yaml")):
            doc = load(path)
            if doc is None:
                continue
            if isinstance(doc.get("group"), str):
                found.setdefault(doc["group"], []).append(doc)
            elif isinstance(doc.get("task"), str):
                found.setdefault(doc["task"], []).append(doc)
            tags = doc.get("tag") or []
            for tag in [tags] if isinstance(tags, str) else tags:
                if isinstance(tag, str) and not isinstance(doc.get("group"), str):
                    found.setdefault(tag, []).append(doc)
    return found


def doc_reads_hub(doc: dict) -> bool:
    """Whether one task's YAML reads a dataset from the Hub: a dataset_path that is not a
    packaged builder nor a local folder, and no data_files (custom_dataset: the task's own code)."""
    path = doc.get("dataset_path")
    if not isinstance(path, str) or doc.get("custom_dataset"):
        return False
    kwargs = doc.get("dataset_kwargs") or {}
    if path in LOCAL_BUILDERS or (isinstance(kwargs, dict) and kwargs.get("data_files")):
        return False
    return not Path(os.path.expanduser(path)).is_dir()


def hub_tasks(names: Iterable[str], dirs: Iterable[os.PathLike]) -> list:
    """Of the task names ``names``, those that read data from the Hub: lm-eval's built-in ones
    (any name the task folders ``dirs`` do not define) and local ones with a task, or a subtask
    of a group or tag, whose YAML names a Hub dataset (doc_reads_hub). YAML only: no lm-eval."""
    docs = _read_task_docs(dirs)

    def reads(name: str, seen: frozenset) -> bool:
        if name not in docs:
            return True  # a built-in task of lm-eval: from the Hub
        if name in seen:
            return False
        for doc in docs[name]:
            if not isinstance(doc.get("group"), str) or doc["group"] != name:
                if doc_reads_hub(doc):
                    return True
                continue
            entries = doc.get("task") or []
            for entry in [entries] if isinstance(entries, str) else entries:
                if isinstance(entry, str) and reads(entry, seen | {name}):
                    return True
                if isinstance(entry, dict):
                    sub = entry.get("task")
                    base = docs.get(sub, [{}])[0] if isinstance(sub, str) and sub in docs else {}
                    if "dataset_path" in entry or not isinstance(sub, str):
                        if doc_reads_hub({**base, **entry}):
                            return True
                    elif reads(sub, seen | {name}):
                        return True
        return False

    return [n for n in names if reads(n, frozenset())]


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "mergelab"


_INDEX_CODE = """
import json, sys
from lm_eval.tasks import TaskManager
tm = TaskManager()
kinds = {}
for name in tm.all_tags: kinds[name] = "tag"
for name in tm.all_groups: kinds[name] = "group"
for name in tm.all_subtasks: kinds[name] = "task"
json.dump(kinds, open(sys.argv[1], "w"))
"""


def lm_eval_index(log=print) -> Optional[Dict[str, str]]:
    """lm-eval's built-in task, group and tag names; None when lm-eval is not importable."""
    try:
        ver = version("lm_eval")
    except PackageNotFoundError:
        return None
    path = cache_dir() / f"lm_eval-{ver}-tasks.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        log(f"mergelab: indexing lm-eval {ver}'s tasks once (about 15 s; cached in {path})")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([sys.executable, "-c", _INDEX_CODE, str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            log(
                f"mergelab: could not index lm-eval's tasks ({proc.stderr.strip().splitlines()[-1:]}); "
                "task names are checked inside the jobs"
            )
            return None
        os.replace(tmp, path)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
