"""The model of an lm-eval evaluation (mergelab.evaluate.harness): its arguments, its load (once, for
one or more lm-eval runs) and one lm-eval run with it, retried with a smaller batch on CUDA
out-of-memory."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from mergelab.evaluate.harness_env import request_cache
from mergelab.plan.jobs import HarnessSettings
from mergelab.runtime.jobs import JobError

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
            free_cuda()


def free_cuda() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


# --------------------------------------------------------------------------- model args


def hf_model_args(path: str, s: HarnessSettings, device: str, gpus: int = 1) -> Dict[str, Any]:
    """HFLM's arguments; a job holding several GPUs splits the model over them
    (``parallelize``: a model too big for one GPU, as the resource estimate found)."""
    args: Dict[str, Any] = {
        "pretrained": path,
        "dtype": s.dtype or "auto",
        "trust_remote_code": bool(s.trust_remote_code),
    }
    if device.startswith("cuda") and gpus > 1:
        args["parallelize"] = True
    if s.revision:
        args["revision"] = s.revision
    args.update(s.model_args or {})
    return args


def vllm_model_args(path: str, s: HarnessSettings, gpus: int) -> Dict[str, Any]:
    args: Dict[str, Any] = {
        "pretrained": path,
        "dtype": s.dtype or "auto",
        "tensor_parallel_size": max(1, gpus),
        "trust_remote_code": bool(s.trust_remote_code),
    }
    if s.revision:
        args["revision"] = s.revision
    args.update(s.model_args or {})
    return args


@dataclass(frozen=True)
class Backend:
    """An lm-eval model backend (harness.settings.backend; the schema's enum is BACKENDS' keys)."""

    name: str  # lm-eval's model name
    model_args: Callable[[str, HarnessSettings, str, int], Dict[str, Any]]  # (path, settings, device, gpus)
    loads_once: bool  # one loaded model serves every lm-eval run of the job; else lm-eval loads it per run


BACKENDS: Dict[str, Backend] = {
    "hf": Backend("hf", hf_model_args, loads_once=True),
    "vllm": Backend("vllm", lambda path, s, device, gpus: vllm_model_args(path, s, gpus), loads_once=False),
}


def args_string(args: Dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items())


def _load_quantized(path: str, s: HarnessSettings, device: str):
    if device != "cuda":
        raise JobError(f"quantization {s.quantization!r} needs a GPU (bitsandbytes); this job runs on the CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise JobError("quantization needs the bitsandbytes package: pip install bitsandbytes") from None
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = getattr(torch, s.dtype) if s.dtype not in (None, "auto") else torch.bfloat16
    q = (
        BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
        if s.quantization == "4bit"
        else BitsAndBytesConfig(load_in_8bit=True)
    )
    return AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=q,
        device_map={"": 0},
        trust_remote_code=bool(s.trust_remote_code),
        revision=s.revision,
    )


# --------------------------------------------------------------------------- the model


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


def load_key(s: HarnessSettings) -> str:
    return repr([(k, getattr(s, k)) for k in LOAD_SETTINGS])


class Model:
    """The model of an evaluation, loaded once (a backend that loads_once: hf) for one or more
    lm-eval runs; another backend (vllm) gives lm-eval the model's arguments: each run loads it."""

    def __init__(self, model_path: str, s: HarnessSettings, device: str, gpus: int):
        self.path, self.device, self.gpus, self.key = model_path, device, gpus, load_key(s)
        self.lm = None
        self.started = time.time()  # the first run's wall_seconds include the load
        self.backend = BACKENDS[s.backend]
        self.args = self.backend.model_args(model_path, s, device, gpus)
        if not self.backend.loads_once:
            return
        from lm_eval.models.huggingface import HFLM

        if s.quantization:
            pretrained = _load_quantized(model_path, s, device)
            self.lm = HFLM(
                pretrained=pretrained,
                tokenizer=model_path,
                batch_size=s.batch_size,
                max_batch_size=s.max_batch_size,
                trust_remote_code=bool(s.trust_remote_code),
            )
        else:
            self.lm = HFLM(batch_size=s.batch_size, max_batch_size=s.max_batch_size, device=device, **self.args)

    def run(self, tasks: List[str], s: HarnessSettings, tm) -> Dict[str, Any]:
        """One lm-eval run of ``tasks`` with settings ``s``: its results dict, and ours under "mergelab"."""
        import lm_eval

        settings = s.record()  # as the results record them, and the request cache is keyed
        cache = request_cache(tasks, settings)
        resumed = bool(cache) and any(Path(cache).parent.glob("lm_eval_rank*.db"))
        common = dict(
            use_cache=cache,
            tasks=list(tasks),
            num_fewshot=s.num_fewshot,
            limit=s.limit,
            log_samples=True,  # always: the per-item results (write_items); .samples.jsonl only where asked
            apply_chat_template=s.apply_chat_template,
            fewshot_as_multiturn=s.fewshot_as_multiturn,
            gen_kwargs=s.gen_kwargs,
            bootstrap_iters=s.bootstrap_iters,
            task_manager=tm,
            **{SEED_KEYS[k]: v for k, v in s.seeds.items()},
        )
        device, lm = self.device, self.lm
        t0, self.started = self.started or time.time(), None
        if not self.backend.loads_once:
            results = lm_eval.simple_evaluate(
                model=self.backend.name,
                model_args=args_string(self.args),
                batch_size=s.batch_size,
                device=device,
                **common,
            )
            bs, failed = s.batch_size, []
        else:

            def run(bs):
                lm.batch_size_per_gpu = bs
                lm.batch_sizes = {}
                return lm_eval.simple_evaluate(model=lm, **common)

            def detected():
                sizes = [v for v in getattr(lm, "batch_sizes", {}).values() if isinstance(v, int)]
                return max(sizes) if sizes else None

            results, bs, failed = run_with_oom_retry(
                run, _parse_batch_size(s.batch_size), detected, fallback=s.max_batch_size
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
            "settings": settings,
            "backend": s.backend,
            "device": device,
            "gpus": self.gpus,
            "quantization": s.quantization,
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


def _parse_batch_size(bs):
    if isinstance(bs, str) and bs.isdigit():
        return int(bs)
    return bs


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)
