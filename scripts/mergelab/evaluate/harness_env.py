"""What a harness job sets up before lm-eval loads, and undoes after: the Hub offline (the task data
comes from harness_data's receipts, checked here), and lm-eval's request cache, so that a job cut
off resumes. Standard library only: mergelab.runtime.jobs calls it for every evaluation job's env.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, List, Optional

from mergelab.plan.paths import HARNESS_DATA
from mergelab.runtime.jobs import JobError

log = logging.getLogger("mergelab.harness")

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def use_cache_dir(cache_dir: Optional[str]) -> None:
    """Point `datasets` at harness.data.cache_dir (before it is imported); None: its default."""
    if cache_dir:
        os.environ["HF_DATASETS_CACHE"] = cache_dir


def go_offline(cache_dir: Optional[str]) -> None:
    """A harness job's environment: the Hub offline (set before huggingface_hub / datasets load)."""
    import sys

    os.environ.update(OFFLINE)
    use_cache_dir(cache_dir)
    if "huggingface_hub" in sys.modules:  # read its environment at import: tell it too
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        cfg = sys.modules["datasets"].config
        cfg.HF_HUB_OFFLINE = cfg.HF_DATASETS_OFFLINE = True
        if cache_dir:
            cfg.HF_DATASETS_CACHE = Path(cache_dir)


# --------------------------------------------------------------------------- the task data


def fetch_hint(task: str) -> str:
    return (
        f"on a machine with the internet (where snakemake runs, the login node) run "
        f"`snakemake {receipt_path(task)} --forcerun harness_data --cores 1`, "
        "with harness.data.cache_dir on a file system the jobs see"
    )


def receipt_path(task: str) -> str:

    return HARNESS_DATA.format(task=task)


def check_receipts(receipts: List[str]) -> None:
    """Before the model loads: every prepared file a receipt names exists here; else one line
    naming the task, the dataset and what to run where."""
    for path in receipts:
        try:
            receipt = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise JobError(f"{path}: unreadable receipt of harness_data ({e}); delete it and run again") from None
        for ds in receipt.get("datasets", []):
            missing = [f for f in ds.get("files", []) if not os.path.exists(f)]
            if missing:
                raise JobError(
                    f"task {receipt.get('task')!r}: dataset {_name(ds)} is not here (missing {missing[0]}) and "
                    f"harness jobs run with the Hub offline: {fetch_hint(receipt.get('task'))}"
                )


def _name(ds: Dict[str, Any]) -> str:
    return ds["dataset"] + (f" ({ds['config']})" if ds.get("config") else "")


def offline_failure(exc: BaseException, tasks: List[str]) -> Optional[str]:
    """One line for a dataset that `datasets` could not find offline (its ConnectionError
    "Couldn't reach '<id>' on the Hub (OfflineModeIsEnabled)"), else None."""
    seen = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if (
            "OfflineModeIsEnabled" in text
            or "offline mode is enabled" in text.lower()
            or type(e).__name__ == "OfflineModeIsEnabled"
        ):
            m = re.search(r"reach '([^']+)'", text)
            dataset = m.group(1) if m else "a dataset"
            task = tasks[0] if len(tasks) == 1 else " / ".join(tasks)
            return (
                f"task {task!r}: dataset {dataset} is not in the datasets cache and harness jobs run with "
                f"the Hub offline: {fetch_hint(tasks[0])}"
            )
        e = e.__cause__ or e.__context__
    return None


# --------------------------------------------------------------------------- resuming: the request cache

# Set by the harness job (mergelab.evaluate.evaluation_job.evaluation_job) from harness.cache: root (absolute; None:
# off), model, keep; the folders this job used are listed in "folders" and removed on success.
REQUEST_CACHE: Dict[str, Any] = {}
KEY_LENGTH = 16  # hex digits of a cache folder's key


def _model_fingerprint(model_path: str) -> List:
    """Names, sizes and times of a model directory's weights and config: a model made again
    (another merge under the same name) gets another cache."""
    d = Path(model_path)
    if not d.is_dir():
        return [model_path]
    out = []
    for f in sorted(d.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".json", ".pt", ".pth") and f.is_file():
            st = f.stat()
            out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def cache_label(tasks: List[str]) -> str:
    return tasks[0] if len(tasks) == 1 else f"{tasks[0]}+{len(tasks) - 1}"


def cache_folder(root: str, model: str, tasks: List[str], s: Dict[str, Any], model_path: str) -> Path:
    """The request cache of one lm-eval run: <root>/<model>/<tasks>-<key>, the key a hash of the
    tasks, the resolved settings, the model's files and lm-eval's version (responses are keyed by
    the request alone, so everything else that changes them must change the folder)."""
    key = json.dumps([list(tasks), s, _model_fingerprint(model_path), version("lm_eval")], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:KEY_LENGTH]
    return Path(root) / model / f"{cache_label(tasks)}-{digest}"


def request_cache(tasks: List[str], s: Dict[str, Any]) -> Optional[str]:
    """lm-eval's use_cache for a run of ``tasks`` in this job (None when harness.cache is off).
    lm-eval appends _rank<r>.db: one SQLite file per process rank (0 here: one process a job)."""
    root = REQUEST_CACHE.get("root")
    if not root:
        return None
    folder = cache_folder(root, REQUEST_CACHE["model"], tasks, s, REQUEST_CACHE.get("model_path", ""))
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("lm_eval_rank*.db")):
        log.info("resuming from the request cache %s (an earlier attempt was cut off)", folder)
    REQUEST_CACHE.setdefault("folders", []).append(str(folder))
    return str(folder / "lm_eval")


def finish_request_cache() -> None:
    """After the job wrote its outputs: remove its caches (and older ones of the same model and
    tasks: other settings), unless harness.cache.keep."""
    if REQUEST_CACHE.get("keep"):
        return
    for folder in REQUEST_CACHE.get("folders", []):
        f = Path(folder)
        for old in f.parent.glob(f"{f.name.rsplit('-', 1)[0]}-{'?' * KEY_LENGTH}"):
            shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(OSError):
            f.parent.rmdir()  # the model's folder, once empty
