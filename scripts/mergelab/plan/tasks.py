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
