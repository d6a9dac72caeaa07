"""One lm-evaluation-harness evaluation: a model on a task, through lm-eval's Python API."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

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
    """Run lm-eval on one (model, task) with resolved settings ``s``; return its results dict.

    ``check_task`` builds the task once before the model is loaded, so that a
    broken data file of a local task fails in a second with one line (cheap for
    local tasks; built-in ones are lm-eval's responsibility).
    """
    import lm_eval
    import torch

    if threads:
        torch.set_num_threads(threads)
    tm = task_manager(include_paths, include_defaults)
    if check_task:
        build_task(task, tm)
    common = dict(
        tasks=[task],
        num_fewshot=s["num_fewshot"],
        limit=s["limit"],
        log_samples=bool(s["log_samples"]),
        apply_chat_template=s["apply_chat_template"],
        fewshot_as_multiturn=s["fewshot_as_multiturn"],
        gen_kwargs=s["gen_kwargs"],
        bootstrap_iters=s["bootstrap_iters"],
        task_manager=tm,
        **{SEED_KEYS[k]: v for k, v in s["seeds"].items()},
    )
    t0 = time.time()
    if s["backend"] == "vllm":
        args = vllm_model_args(model_path, s, gpus)
        results = lm_eval.simple_evaluate(
            model="vllm", model_args=args_string(args), batch_size=s["batch_size"], device=device, **common
        )
        bs, failed = s["batch_size"], []
    else:
        from lm_eval.models.huggingface import HFLM

        args = hf_model_args(model_path, s, device, gpus)
        if s["quantization"]:
            pretrained = _load_quantized(model_path, s, device)
            lm = HFLM(
                pretrained=pretrained,
                tokenizer=model_path,
                batch_size=s["batch_size"],
                max_batch_size=s["max_batch_size"],
                trust_remote_code=bool(s["trust_remote_code"]),
            )
        else:
            lm = HFLM(batch_size=s["batch_size"], max_batch_size=s["max_batch_size"], device=device, **args)

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
        results["config"]["model_args"] = args_string(args)
        results["config"]["batch_size"] = bs
        results["config"]["device"] = device
    if results is None:  # only on non-zero ranks of a distributed run
        raise JobError("lm-eval returned no results")
    results["mergelab"] = {
        "model_path": model_path,
        "task": task,
        "settings": s,
        "backend": s["backend"],
        "device": device,
        "gpus": gpus,
        "quantization": s["quantization"],
        "batch_size_used": bs,
        "oom_batch_sizes": failed,
        "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else _version("lm_eval"),
        "wall_seconds": round(time.time() - t0, 3),
    }
    return results


def _parse_batch_size(bs):
    if isinstance(bs, str) and bs.isdigit():
        return int(bs)
    return bs


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def write_results(results: Dict[str, Any], json_path: str, samples_path: Optional[str] = None) -> None:
    """The results dict as JSON under its declared name; samples as JSON lines beside it."""
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples", None)
    if samples_path:
        with atomic_file(samples_path) as fh:
            for task_name, rows in (samples or {}).items():
                for row in rows:
                    fh.write(json.dumps({"task": task_name, **row}, default=handle_non_serializable) + "\n")
    with atomic_file(json_path) as fh:
        json.dump(results, fh, indent=2, default=handle_non_serializable, sort_keys=False)
        fh.write("\n")
