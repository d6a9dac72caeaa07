"""lm-eval task data from the Hub: fetched once by the local rule harness_data, read offline by
the harness jobs.

On a cluster the login node usually has the internet and the compute nodes do not. The
harness_data job (on the machine running snakemake) builds the task with lm-eval, which makes
`datasets.load_dataset` download and prepare every (sub)task's dataset into the datasets cache
(or harness.data.cache_dir), exactly as the evaluation will ask for it, and writes a receipt:
results/harness/data/{task}.json. Harness jobs run with HF_HUB_OFFLINE / HF_DATASETS_OFFLINE
set, so `datasets` takes the prepared copy and never touches the network; without it, the job
fails in one line naming the task, the dataset and what to run where (mergelab.evaluate.harness_env).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mergelab.evaluate.harness import build_task, task_manager
from mergelab.evaluate.harness_env import use_cache_dir
from mergelab.plan.tasks import doc_reads_hub
from mergelab.runtime.jobs import atomic_file


def leaf_tasks(task_dict: Dict) -> Iterator[Tuple[str, Any]]:
    """(name, Task) of every task in lm-eval's (nested) task dict: a group's subtasks, depth first."""
    for key, value in task_dict.items():
        if isinstance(value, dict):
            yield from leaf_tasks(value)
        elif value is not None:
            yield str(key), value


def hub_dataset(task) -> Optional[Dict[str, Any]]:
    """What a built task reads from the Hub: {path, name, revision}; None for local data."""
    cfg = task.config
    doc = {
        "dataset_path": cfg.dataset_path,
        "dataset_kwargs": cfg.dataset_kwargs or {},
        "custom_dataset": cfg.custom_dataset,
    }
    if not doc_reads_hub(doc):
        return None
    kwargs = cfg.dataset_kwargs or {}
    return {"path": cfg.dataset_path, "name": cfg.dataset_name, "revision": kwargs.get("revision")}


def _cached_files(dataset) -> Tuple[Dict[str, int], List[str]]:
    """Rows per split and the prepared (arrow) files of a loaded dataset."""
    splits = dataset.items() if hasattr(dataset, "items") else [("all", dataset)]
    rows, files = {}, []
    for split, ds in splits:
        rows[split] = int(getattr(ds, "num_rows", 0) or 0)
        files += [f["filename"] for f in getattr(ds, "cache_files", []) or [] if f.get("filename")]
    return rows, sorted(set(files))


def fetch_task_data(
    task: str, include_paths: List[str], include_defaults: bool, cache_dir: Optional[str], log=None
) -> Dict[str, Any]:
    """Download the Hub datasets of ``task`` (every subtask's, for a group) and return the receipt:
    the task, the cache, and per dataset its id, config, revision asked, commit, splits, files, bytes."""
    use_cache_dir(cache_dir)

    tm = task_manager(include_paths, include_defaults)
    task_dict = build_task(task, tm)  # lm-eval loads every subtask's data: online, into the cache
    found: Dict[tuple, Dict[str, Any]] = {}
    for name, t in leaf_tasks(task_dict):
        ds = hub_dataset(t)
        if ds is None:
            continue
        key = (ds["path"], ds["name"], ds["revision"])
        entry = found.get(key)
        if entry is None:
            rows, files = _cached_files(t.dataset)
            entry = found[key] = {
                "dataset": ds["path"],
                "config": ds["name"],
                "revision": ds["revision"],
                "commit": _commit(ds["path"], ds["revision"]),
                "tasks": [],
                "splits": rows,
                "files": files,
                "bytes": sum(os.path.getsize(f) for f in files if os.path.exists(f)),
            }
            if log:
                log.info(
                    "%s: %s (%s) at %s: %d files, %d bytes", name, *key[:2], entry["commit"], len(files), entry["bytes"]
                )
        entry["tasks"].append(name)
    import datasets

    return {
        "task": task,
        "datasets": list(found.values()),
        "cache_dir": str(datasets.config.HF_DATASETS_CACHE),
        "datasets_version": datasets.__version__,
        "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _commit(path: str, revision: Optional[str]) -> Optional[str]:
    from huggingface_hub import HfApi

    return HfApi().dataset_info(path, revision=revision).sha


def write_receipt(receipt: Dict[str, Any], path: str) -> None:
    with atomic_file(path) as fh:
        json.dump(receipt, fh, indent=2)
        fh.write("\n")
