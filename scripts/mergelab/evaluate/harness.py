"""One lm-evaluation-harness evaluation: a model on its tasks, through lm-eval's Python API;
the results of each task, written. The model, and one lm-eval run with it: mergelab.evaluate.harness_model."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any, Dict, List, Optional

from mergelab.evaluate import harness_env
from mergelab.evaluate.completeness import partial_result
from mergelab.evaluate.harness_env import offline_failure
from mergelab.evaluate.harness_model import Model, free_cuda, load_key
from mergelab.evaluate.items import item_rows, items_frame
from mergelab.plan.jobs import HarnessSettings
from mergelab.runtime.jobs import JobError, atomic_file

log = logging.getLogger("mergelab.harness")


# --------------------------------------------------------------------------- evaluation


def task_manager(include_paths: List[str], include_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_paths) or None, include_defaults=include_defaults)


def build_task(task: str, tm) -> Dict:
    """lm-eval's task dict for one task or group; data problems become one line."""
    from lm_eval.tasks import get_task_dict

    try:
        return get_task_dict([task], tm)
    except Exception as e:  # noqa: BLE001 - any failure to build the task is the user's data/config
        root = e.__cause__ or e  # the library's wrapper hides the reason one level down
        first = (str(root).strip().splitlines() or [""])[0]
        files = _data_files(tm, task)
        where = f" (data: {', '.join(files)})" if files else ""
        raise JobError(f"lm-eval could not load task {task!r}{where}: {type(root).__name__}: {first}") from e


def _data_files(tm, task: str) -> List[str]:
    """The data files a task's config names, for error messages."""
    entry = getattr(tm, "task_index", {}).get(task)
    cfg = getattr(entry, "cfg", None) or {}
    files = (cfg.get("dataset_kwargs") or {}).get("data_files") or {}
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return [str(v) for v in files.values()]
    return [str(f) for f in files] if isinstance(files, list) else []


def evaluate(
    model_path: str,
    task: str,
    s: HarnessSettings,
    *,
    include_paths: List[str],
    include_defaults: bool,
    device: str,
    gpus: int,
    check_task: bool = False,
    threads: Optional[int] = None,
) -> Dict[str, Any]:
    """Run lm-eval on one (model, task) with resolved settings ``s``; return its results dict
    (a per_task job: evaluate_model with one group of one task)."""
    results = evaluate_model(
        model_path,
        [[task]],
        {task: s},
        include_paths=include_paths,
        include_defaults=include_defaults,
        device=device,
        gpus=gpus,
        check_tasks=[task] if check_task else [],
        threads=threads,
    )
    return results[task]


def evaluate_model(
    model_path: str,
    groups: List[List[str]],
    settings: Dict[str, HarnessSettings],
    *,
    include_paths: List[str],
    include_defaults: bool,
    device: str,
    gpus: int,
    check_tasks: List[str] = (),
    threads: Optional[int] = None,
) -> Dict[str, Dict[str, Any]]:
    """lm-eval on a model's tasks: one lm-eval run per group of tasks with identical settings
    ``settings`` (task -> the resolved settings), the model loaded once (again only for a group
    that loads it differently: another dtype, batch size, model_args...). Returns task -> its
    results dict, as a run of that task alone writes it (split_results). A tag (lm-eval names
    no entry after it) runs alone. Any failure fails the whole job.

    A per_task job is one group of one task. ``check_tasks`` (local ones) are built before the
    model is loaded, so that a broken data file fails in a second with one line (cheap for
    local tasks; built-in ones are lm-eval's responsibility)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    tm = task_manager(include_paths, include_defaults)
    for task in check_tasks:
        build_task(task, tm)
    harness_env.REQUEST_CACHE.setdefault("model_path", model_path)
    out: Dict[str, Dict[str, Any]] = {}
    model = None
    groups = tags_alone(groups, tm)
    for i, tasks in enumerate(groups, 1):
        s = settings[tasks[0]]
        if model is None or model.key != load_key(s):
            model = None
            free_cuda()
            model = Model(model_path, s, device, gpus)
        log.info("lm-eval run %d of %d: %s", i, len(groups), ", ".join(tasks))
        try:
            results = model.run(tasks, s, tm)
        except Exception as e:  # noqa: BLE001 - a dataset missing offline becomes one line
            line = offline_failure(e, tasks)
            if line:
                raise JobError(line) from e
            raise
        problem = partial_result(results)
        if problem:
            raise JobError(f"{', '.join(tasks)}: {problem}: not written as a result")
        for task, res in split_results(results, tasks).items():
            res["mergelab"]["task"] = task
            if len(tasks) > 1:
                res["mergelab"]["evaluated_with"] = list(tasks)  # the tasks that shared its lm-eval run
            out[task] = res
    return out


def tags_alone(groups: List[List[str]], tm) -> List[List[str]]:
    """``groups`` with every lm-eval tag in a run of its own: a tag's tasks are not named after
    it in the results (no group entry), so they cannot be told apart from the other tasks'."""
    out = []
    for tasks in groups:
        tags = [t for t in tasks if len(tasks) > 1 and _is_tag(t, tm)]
        out += [[t for t in tasks if t not in tags]] if len(tags) < len(tasks) else []
        out += [[t] for t in tags]
    return out


def _is_tag(name: str, tm) -> bool:
    entry = getattr(tm, "task_index", {}).get(name)
    return getattr(getattr(entry, "kind", None), "name", None) == "TAG"


# --------------------------------------------------------------------------- results, per task


# results keys that map a task or group name to its entry
PER_TASK_KEYS = (
    "results",
    "groups",
    "group_subtasks",
    "configs",
    "versions",
    "n-shot",
    "higher_is_better",
    "n-samples",
    "samples",
    "task_hashes",
)


def members(task: str, group_subtasks: Dict[str, List[str]]) -> List[str]:
    """``task`` and, for a group, its subtasks and theirs, depth first."""
    out = [task]
    for sub in group_subtasks.get(task) or []:
        out += [m for m in members(sub, group_subtasks) if m not in out]
    return out


def split_results(results: Dict[str, Any], tasks: List[str]) -> Dict[str, Dict[str, Any]]:
    """lm-eval's results of a run of several tasks, as the results of a run of each task alone:
    the keys naming tasks (PER_TASK_KEYS) keep the task's entries (a group's: its own and its
    subtasks'); every other key (config, environment, tokenizer, timing) is copied."""
    import copy

    if len(tasks) == 1:
        return {tasks[0]: results}
    subtasks = results.get("group_subtasks") or {}
    out = {}
    for task in tasks:
        if task not in results.get("results", {}) and task not in subtasks:
            raise JobError(f"lm-eval's results of {', '.join(tasks)} name no entry {task!r}")
        keep = set(members(task, subtasks))
        res = {}
        for key, value in results.items():
            if key in PER_TASK_KEYS and isinstance(value, dict):
                part = {k: v for k, v in value.items() if k in keep}  # written, never changed
                if part or key != "groups":  # lm-eval writes groups only when there are some
                    res[key] = part
            else:
                res[key] = copy.deepcopy(value)
        out[task] = res
    return out


def write_results(
    results: Dict[str, Any],
    json_path: str,
    samples_path: Optional[str] = None,
    stack=None,
    items_path: Optional[str] = None,
) -> None:
    """The results dict as JSON under its declared name; the per-item results (from the samples
    lm-eval always logs for us) as parquet, and the samples as JSON lines only where asked.
    With ``stack`` (an ExitStack), the files take their names only when the stack closes."""
    from lm_eval.utils import handle_non_serializable

    with contextlib.ExitStack() if stack is None else contextlib.nullcontext(stack) as files:
        samples = results.pop("samples", None)
        if items_path:
            rows, left_out = item_rows(samples)
            if left_out:
                log.info("no per-item values (aggregated over the corpus only): %s", ", ".join(left_out))
            fh = files.enter_context(atomic_file(items_path, "wb"))
            items_frame(rows).to_parquet(fh, index=False)
        if samples_path:
            fh = files.enter_context(atomic_file(samples_path))
            for task_name, rows in (samples or {}).items():
                for row in rows:
                    fh.write(json.dumps({"task": task_name, **row}, default=handle_non_serializable) + "\n")
        fh = files.enter_context(atomic_file(json_path))
        json.dump(results, fh, indent=2, default=handle_non_serializable, sort_keys=False)
        fh.write("\n")


def write_model_results(
    results: Dict[str, Dict[str, Any]], json_paths: List[str], samples_paths: List[str], items_paths: List[str] = ()
) -> None:
    """A per_model job's outputs: each task's results under its declared names (<task>.json,
    <task>.items.parquet, <task>.samples.jsonl). All or nothing: no file takes its name unless
    every one was written."""
    from pathlib import Path

    named = {Path(p).name: p for p in list(json_paths) + list(samples_paths) + list(items_paths)}
    with contextlib.ExitStack() as stack:
        for task, res in results.items():
            write_results(
                res,
                named[f"{task}.json"],
                named.get(f"{task}.samples.jsonl"),
                stack=stack,
                items_path=named.get(f"{task}.items.parquet"),
            )
