"""What a job needs, from the size of the models it reads: GPUs, host memory, runtime.

Used by the rules' ``resources:`` (``gpu``, ``mem_mb``, ``runtime``), so that the
same numbers pin devices locally (``--resources gpu=4``) and size SLURM requests
(``--gpus``, ``--mem``, ``-t``). The size is read from the safetensors headers
(a few KB per shard, no tensor data), so a no-op DAG stays fast; a merge not
made yet is sized from what it reads (``merge_size``), a hub parent before its
fetch gets the fallback, and Snakemake evaluates the resources again, with the
files there, just before it starts or submits the job.

The formulas are deliberately simple and on the generous side; override them per
model in the config (``gpus``, ``resources``) or per rule in the profile
(``set-resources``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from mergelab.runtime.checkpoint import ELEMENT_BYTES, header, weight_files

GIB = 1024**3
GB = 10**9  # compute.gpu_memory_gb is in GB, as GPU makers state a card's memory (80 GB: 74.5 GiB)

# Bytes per parameter of a safetensors dtype, and of the dtypes the config names.
DTYPE_BYTES = {**ELEMENT_BYTES, "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
QUANTIZED_BYTES = {"8bit": 1.0, "4bit": 0.5}

FALLBACK = {"gpu": 1, "mem_mb": 16 * 1024, "runtime": 240}


@dataclass(frozen=True)
class ComputePlan:
    """compute: the machine the jobs run on (run-time settings that a profile may set)."""

    gpu_memory_gb: float  # one GPU's memory: how many GPUs a big model's evaluation asks for
    light_rules: str  # local: light rules run where snakemake runs; cluster: submitted like the rest

    def runs_locally(self, light: bool) -> bool:
        """Whether a rule (light or not) runs on the host running snakemake (its localrule)."""
        return light and self.light_rules == "local"


@dataclass(frozen=True)
class Sizing:
    """How the jobs of a GPU rule are sized (its entry of mergelab.plan.rules.RULES).

    ``reads``: merge, the models a merge reads; harness, holmes or stored, the one model
    evaluated, loaded in its harness task's dtype, Holmes' dtype or as stored. Runtime: ``fixed``
    minutes plus ``per_b`` per billion parameters. ``key``: the config's per-model overrides that
    apply (``models.<name>.resources.<key>``). ``tasks``: a job running several harness tasks
    after one load, each sized as ``per_task`` (tasks(exp, model) names them)."""

    reads: str
    fixed: int = 0
    per_b: float = 0.0
    key: str = ""
    per_task: Optional["Sizing"] = None
    tasks: Optional[Callable[[Any, str], List[str]]] = None


@dataclass(frozen=True)
class Size:
    params: int  # parameters
    nbytes: int  # bytes of the weights on disk

    @property
    def bytes_per_param(self) -> float:
        return self.nbytes / self.params if self.params else 2.0


def checkpoint_size(model_dir: str | os.PathLike) -> Optional[Size]:
    """Parameters and bytes of a model directory's safetensors weights; None if it has none.
    Raises CheckpointError (naming the file) for a broken index or header."""
    paths = [p for p in weight_files(model_dir) if p.suffix == ".safetensors"]
    params = nbytes = 0
    for p in paths:
        for name, t in header(p).items():
            if name == "__metadata__":
                continue
            params += math.prod(t["shape"])
            start, end = t["data_offsets"]
            nbytes += end - start
    return Size(params, nbytes) if params else None


_CACHE: Dict[tuple, Optional[Size]] = {}


def size_of(input_path: Optional[str]) -> Optional[Size]:
    """The size of the model a rule input names: a model directory or a hub fetch
    receipt (its snapshot); None while it is not on disk. Cached by modification time."""
    if not input_path:
        return None
    p = Path(input_path)
    try:
        if p.suffix == ".json" and p.is_file():
            with open(p, encoding="utf-8") as fh:
                p = Path(json.load(fh)["path"])
        key = (str(p), p.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if key not in _CACHE:
        try:
            _CACHE[key] = checkpoint_size(p)
        except Exception:  # a broken checkpoint: the fallback; the config check or the job names the file
            _CACHE[key] = None
    return _CACHE[key]


def weights_gib(size: Size, dtype: Optional[str] = None, quantization: Optional[str] = None) -> float:
    """GiB the weights take once loaded in ``dtype`` (auto/None: as stored)."""
    if quantization in QUANTIZED_BYTES:
        bpp = QUANTIZED_BYTES[quantization]
    elif dtype and dtype in DTYPE_BYTES:
        bpp = DTYPE_BYTES[dtype]
    else:
        bpp = size.bytes_per_param
    return size.params * bpp / GIB


def estimate(
    sizing: Sizing,
    sizes: Iterable[Optional[Size]],
    *,
    dtype: Optional[str] = None,
    quantization: Optional[str] = None,
    gpu_memory_gb: float = 80.0,
    passthrough: bool = False,
) -> Dict[str, int]:
    """``gpu``, ``mem_mb`` and ``runtime`` (minutes) of one job sized by ``sizing``.

    merge: ``sizes`` are the models it reads. mergekit streams tensor by tensor,
    so one GPU suffices whatever the size; host memory holds an output shard and
    the tensors in flight. The result is as big as one parent (the sum of them
    for a passthrough stack).
    An evaluation (harness, holmes, stored): ``sizes`` is the one model evaluated. The weights in
    the evaluation dtype plus 20% and 4 GiB for activations must fit on the GPUs, each of
    ``gpu_memory_gb`` GB (10^9 bytes; the needs are in GiB).
    """
    sizes = list(sizes)
    if not sizes or any(s is None for s in sizes):
        return dict(FALLBACK)
    fixed, per_b = sizing.fixed, sizing.per_b
    if sizing.reads == "merge":
        read = sum(weights_gib(s) for s in sizes)
        out = read if passthrough else max(weights_gib(s, dtype) for s in sizes)
        params_b = sum(s.params for s in sizes) / 1e9
        return {
            "gpu": 1,
            "mem_mb": int(1024 * (4 + min(2 * out, 12))),
            "runtime": int(math.ceil(fixed + per_b * params_b)),
        }
    (s,) = sizes
    w = weights_gib(s, dtype, quantization)
    need = 1.2 * w + 4
    return {
        "gpu": max(1, math.ceil(need / (gpu_memory_gb * GB / GIB))),
        "mem_mb": int(1024 * math.ceil(4 + 1.25 * w)),
        "runtime": int(math.ceil(fixed + per_b * s.params / 1e9)),
    }


def resolve(
    rule: str, estimated: Mapping[str, int], gpus: Optional[int], overrides: Optional[Mapping[str, Mapping[str, int]]]
) -> Dict[str, int]:
    """The estimate, then the model's ``gpus``, then its ``resources.<rule>`` values."""
    out = dict(estimated)
    if gpus is not None:
        out["gpu"] = gpus
    out.update((k, v) for k, v in ((overrides or {}).get(rule) or {}).items() if v is not None)
    return out


def gpu_job_threads(cores: Optional[int], gpus: Optional[int]) -> int:
    """CPU threads of a GPU job: the cores shared among the GPUs that run at once
    (--cores 16 --resources gpu=4: four jobs of four threads). Without a GPU
    count (a CPU run, or --resources gpu=0) one thread, so that as many jobs run
    at once as there are cores; raise it with --set-threads merge=N."""
    return max(1, (cores or 4) // gpus) if gpus else 1


def job_resources(exp, sizing: Sizing, model: str, task: Optional[str] = None) -> Dict[str, int]:
    """gpu, mem_mb and runtime of one job sized by ``sizing`` (a GPU rule's entry of
    mergelab.plan.rules.RULES) of the Experiment ``exp``: estimated from the size of the models it
    reads, then the config's overrides. Snakemake asks again just before the job starts, when its
    inputs exist.

    A job of several harness tasks (harness_eval_model, harness.jobs: per_model; search_eval, a
    trial's dev subset, at most this) runs them after one load: the runtime is the sum of its
    tasks' runtimes, GPUs and memory those of its biggest task (the model is loaded once; tasks in
    another dtype load it again, one at a time); then the model's resources.<key> for the whole
    job (harness_eval_model), if the sizing has a key."""
    if sizing.tasks is not None:
        per_task = [job_resources(exp, sizing.per_task, model, t) for t in sizing.tasks(exp, model)]
        whole = {
            "gpu": max(r["gpu"] for r in per_task),
            "mem_mb": max(r["mem_mb"] for r in per_task),
            "runtime": sum(r["runtime"] for r in per_task),
        }
        return resolve(sizing.key, whole, None, exp.resource_overrides(model)) if sizing.key else whole
    if sizing.reads == "merge":
        spec = exp.merge_spec(model, estimate=True)
        sizes = [size_of(p) for name in spec.inputs for p in exp.model_input(name)] + [
            size_of(p) for p in spec.path_inputs
        ]
        est = estimate(sizing, sizes, dtype=spec.dtype, passthrough=spec.stacks_parents)
        return resolve(sizing.key, est, spec.gpus, spec.resources)
    if sizing.reads == "harness":
        s = exp.harness.settings_for(model, task)
        dtype, quantization = s.dtype, s.quantization
    elif sizing.reads == "stored":
        dtype, quantization = exp.model_dtype(model), None
    else:
        dtype, quantization = exp.holmes.settings_for(model).dtype, None
    sizes = [model_size(exp, model)]
    est = estimate(sizing, sizes, dtype=dtype, quantization=quantization, gpu_memory_gb=exp.compute.gpu_memory_gb)
    return resolve(sizing.key, est, exp.gpus(model), exp.resource_overrides(model))


def model_size(exp, name: str) -> Optional[Size]:
    """The size of model ``name`` of the Experiment ``exp``: its weights' headers when they are on
    disk; for a merge not made yet, the size it will have (``merge_size``); else None (a hub parent
    before its fetch: the fallback, until Snakemake asks again with the files there)."""
    found = [size_of(p) for p in exp.model_input(name)]
    if found and found[0] is not None:
        return found[0]
    return merge_size(exp, name) if exp.is_merge(name) else None


def merge_size(exp, name: str) -> Optional[Size]:
    """The size merge ``name`` will have, from what it reads: the parameters of its biggest input
    (all of them together for a passthrough stack or a mixture of experts: an upper bound), in the
    dtype it is written in (auto: as its inputs are stored). None while an input's size is unknown."""
    spec = exp.merge_spec(name, estimate=True)
    if spec is None:  # a search's trial with no stand-in
        return None
    sizes = [model_size(exp, i) for i in spec.inputs] + [size_of(p) for p in spec.path_inputs]
    if not sizes or any(s is None for s in sizes):
        return None
    params = sum(s.params for s in sizes) if spec.stacks_parents else max(s.params for s in sizes)
    per_param = DTYPE_BYTES.get(spec.dtype) or max(s.bytes_per_param for s in sizes)
    return Size(params, int(params * per_param))
