"""One lm-evaluation-harness evaluation: a model on a task, through lm-eval's Python API."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from mergelab import harness_env
from mergelab.completeness import partial_result
from mergelab.harness_env import request_cache
from mergelab.items import item_rows, items_frame
from mergelab.jobs import JobError, atomic_file

log = logging.getLogger("mergelab.harness")

SEED_KEYS = {
    "random": "random_seed",
    "numpy": "numpy_random_seed",
    "torch": "torch_random_seed",
    "fewshot": "fewshot_random_seed",
}


# --------------------------------------------------------------------------- OOM


def is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_with_oom_retry(
    run: Callable[[Any], Any], batch_size, detected: Callable[[], Optional[int]] = lambda: None, fallback: int = 64
) -> Tuple[Any, Any, List]:
    """Call run(batch_size); on CUDA out-of-memory, retry with half the batch size.

    ``batch_size`` is an int or "auto"/"auto:N"; after an OOM with "auto" the
    retry starts from half the size lm-eval had detected (``detected()``), or
    half of ``fallback``. Returns (result, the batch size that succeeded,
    the sizes that ran out of memory).
    """
    failed: List = []
    bs = batch_size
    while True:
        try:
            return run(bs), bs, failed
        except Exception as exc:  # noqa: BLE001 - re-raised unless OOM
            if not is_oom(exc):
                raise
            failed.append(bs)
            start = bs if isinstance(bs, int) else (detected() or fallback)
            if start <= 1:
                raise JobError(f"CUDA out of memory even with batch size 1 (tried {failed})") from exc
            bs = max(1, start // 2)
            log.warning("CUDA out of memory with batch size %s: retrying with %d", failed[-1], bs)
            _free_cuda()


def _free_cuda() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


# --------------------------------------------------------------------------- model args


def hf_model_args(path: str, s: Dict[str, Any], device: str, gpus: int = 1) -> Dict[str, Any]:
    """HFLM's arguments; a job holding several GPUs splits the model over them
    (``parallelize``: a model too big for one GPU, as the resource estimate found)."""
    args: Dict[str, Any] = {
        "pretrained": path,
        "dtype": s["dtype"] or "auto",
        "trust_remote_code": bool(s["trust_remote_code"]),
    }
    if device.startswith("cuda") and gpus > 1:
        args["parallelize"] = True
    if s.get("revision"):
        args["revision"] = s["revision"]
    args.update(s.get("model_args") or {})
    return args


def vllm_model_args(path: str, s: Dict[str, Any], gpus: int) -> Dict[str, Any]:
    args: Dict[str, Any] = {
        "pretrained": path,
        "dtype": s["dtype"] or "auto",
        "tensor_parallel_size": max(1, gpus),
        "trust_remote_code": bool(s["trust_remote_code"]),
    }
    if s.get("revision"):
        args["revision"] = s["revision"]
    args.update(s.get("model_args") or {})
    return args


def args_string(args: Dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items())


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


def _load_quantized(path: str, s: Dict[str, Any], device: str):
    if device != "cuda":
        raise JobError(f"quantization {s['quantization']!r} needs a GPU (bitsandbytes); this job runs on the CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise JobError("quantization needs the bitsandbytes package: pip install bitsandbytes") from None
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = getattr(torch, s["dtype"]) if s["dtype"] not in (None, "auto") else torch.bfloat16
    q = (
        BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
        if s["quantization"] == "4bit"
        else BitsAndBytesConfig(load_in_8bit=True)
    )
    return AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=q,
        device_map={"": 0},
        trust_remote_code=bool(s["trust_remote_code"]),
        revision=s.get("revision"),
    )


def evaluate(
    model_path: str,
    task: str,
    s: Dict[str, Any],
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
    settings: Dict[str, Dict[str, Any]],
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
            _free_cuda()
            model = Model(model_path, s, device, gpus)
        log.info("lm-eval run %d of %d: %s", i, len(groups), ", ".join(tasks))
        try:
            results = model.run(tasks, s, tm)
        except Exception as e:  # noqa: BLE001 - a dataset missing offline becomes one line
            from mergelab.harness_env import offline_failure

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


# settings that the model load depends on; the others only change the lm-eval run
LOAD_SETTINGS = (
    "backend",
    "dtype",
    "quantization",
    "model_args",
    "trust_remote_code",
    "revision",
    "batch_size",
    "max_batch_size",
)


def load_key(s: Dict[str, Any]) -> str:
    return repr([(k, s.get(k)) for k in LOAD_SETTINGS])


class Model:
    """The model of an evaluation, loaded once (hf backend) for one or more lm-eval runs.
    The vllm backend gives lm-eval the model's arguments: each run loads it."""

    def __init__(self, model_path: str, s: Dict[str, Any], device: str, gpus: int):
        self.path, self.device, self.gpus, self.key = model_path, device, gpus, load_key(s)
        self.lm = None
        self.started = time.time()  # the first run's wall_seconds include the load
        if s["backend"] == "vllm":
            self.args = vllm_model_args(model_path, s, gpus)
            return
        from lm_eval.models.huggingface import HFLM

        self.args = hf_model_args(model_path, s, device, gpus)
        if s["quantization"]:
            pretrained = _load_quantized(model_path, s, device)
            self.lm = HFLM(
                pretrained=pretrained,
                tokenizer=model_path,
                batch_size=s["batch_size"],
                max_batch_size=s["max_batch_size"],
                trust_remote_code=bool(s["trust_remote_code"]),
            )
        else:
            self.lm = HFLM(batch_size=s["batch_size"], max_batch_size=s["max_batch_size"], device=device, **self.args)

    def run(self, tasks: List[str], s: Dict[str, Any], tm) -> Dict[str, Any]:
        """One lm-eval run of ``tasks`` with settings ``s``: its results dict, and ours under "mergelab"."""
        import lm_eval

        cache = request_cache(tasks, s)
        resumed = bool(cache) and any(Path(cache).parent.glob("lm_eval_rank*.db"))
        common = dict(
            use_cache=cache,
            tasks=list(tasks),
            num_fewshot=s["num_fewshot"],
            limit=s["limit"],
            log_samples=True,  # always: the per-item results (write_items); .samples.jsonl only where asked
            apply_chat_template=s["apply_chat_template"],
            fewshot_as_multiturn=s["fewshot_as_multiturn"],
            gen_kwargs=s["gen_kwargs"],
            bootstrap_iters=s["bootstrap_iters"],
            task_manager=tm,
            **{SEED_KEYS[k]: v for k, v in s["seeds"].items()},
        )
        device, lm = self.device, self.lm
        t0, self.started = self.started or time.time(), None
        if lm is None:
            results = lm_eval.simple_evaluate(
                model="vllm",
                model_args=args_string(self.args),
                batch_size=s["batch_size"],
                device=device,
                **common,
            )
            bs, failed = s["batch_size"], []
        else:

            def run(bs):
                lm.batch_size_per_gpu = bs
                lm.batch_sizes = {}
                return lm_eval.simple_evaluate(model=lm, **common)

            def detected():
                sizes = [v for v in getattr(lm, "batch_sizes", {}).values() if isinstance(v, int)]
                return max(sizes) if sizes else None

            results, bs, failed = run_with_oom_retry(
                run, _parse_batch_size(s["batch_size"]), detected, fallback=s["max_batch_size"]
            )
            results["config"]["model"] = "hf"
            results["config"]["model_args"] = args_string(self.args)
            results["config"]["batch_size"] = bs
            results["config"]["device"] = device
            _close_cache(lm)
        if results is None:  # only on non-zero ranks of a distributed run
            raise JobError("lm-eval returned no results")
        results["mergelab"] = {
            "model_path": self.path,
            "task": None,
            "settings": s,
            "backend": s["backend"],
            "device": device,
            "gpus": self.gpus,
            "quantization": s["quantization"],
            "batch_size_used": bs,
            "oom_batch_sizes": failed,
            "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else _version("lm_eval"),
            "wall_seconds": round(time.time() - t0, 3),
            "resumed_from_cache": resumed,  # an earlier attempt was cut off: some responses are its
        }
        if "use_cache" in results.get("config", {}):  # the cache is gone once the job succeeds
            results["config"]["use_cache"] = None
        return results


# --------------------------------------------------------------------------- resuming: the request cache


def _close_cache(lm) -> None:
    """Flush and close the SQLite cache lm-eval hooked to the model, so that nothing writes to it
    after the run (the model is reused by the next run of a per_model job)."""
    hook = getattr(lm, "cache_hook", None)
    db = getattr(hook, "dbdict", None)
    if db is not None:
        with contextlib.suppress(Exception):
            db.commit()
            db.close()
        hook.dbdict = None


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


def _parse_batch_size(bs):
    if isinstance(bs, str) and bs.isdigit():
        return int(bs)
    return bs


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


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
