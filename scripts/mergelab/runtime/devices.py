"""Pin a job to GPUs nobody else holds.

Snakemake counts the ``gpu`` resource but never says *which* devices a job may
use (snakemake#281), so four ``gpu=1`` jobs all land on card 0. Every GPU job
of mergelab therefore runs inside :func:`pinned_devices`, which

- with ``k == 0`` hides all GPUs (CPU job);
- under SLURM, when CUDA_VISIBLE_DEVICES already lists exactly ``k`` devices,
  uses them as they are (SLURM has allocated them to this job alone);
- otherwise takes ``k`` devices from the visible pool by holding a
  non-blocking ``flock`` on one lock file per device, all or nothing, waiting
  while fewer than ``k`` are free; sets CUDA_VISIBLE_DEVICES to them; and keeps
  the locks until the job ends. The kernel drops the locks when the process
  dies, so a killed job never leaves a device held;
- with no GPU on the machine, runs the job on the CPU.

Inside the job, the device is then always ``cuda`` (``cuda:0`` ... ``cuda:k-1``).
No torch import: the pool comes from CUDA_VISIBLE_DEVICES or ``nvidia-smi -L``;
``MERGELAB_GPUS`` (e.g. ``0,1,2,3``) overrides detection.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

log = logging.getLogger("mergelab.devices")


class DeviceError(RuntimeError):
    pass


def _split(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def detect_gpus() -> List[str]:
    """Device ids of the GPUs of this machine (physical indices)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def device_pool() -> List[str]:
    if "MERGELAB_GPUS" in os.environ:
        return _split(os.environ["MERGELAB_GPUS"])
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return _split(os.environ["CUDA_VISIBLE_DEVICES"])
    return detect_gpus()


def lock_dir() -> Path:
    d = Path(os.environ.get("MERGELAB_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / "mergelab-gpu-locks")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _try_lock(path: Path) -> Optional[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _release(fds) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)


def acquire(k: int, pool: List[str], directory: Path, poll: float = 0.2, report_every: float = 60.0):
    """Lock k devices of pool, waiting until k are free; return (devices, fds)."""
    if k > len(pool):
        raise DeviceError(f"this job needs {k} GPU(s) but only {len(pool)} are visible ({','.join(pool) or 'none'})")
    start = last_report = time.monotonic()
    while True:
        held, fds = [], []
        for dev in pool:
            fd = _try_lock(directory / f"gpu-{re.sub(r'[^A-Za-z0-9._-]', '_', dev)}.lock")
            if fd is not None:
                held.append(dev)
                fds.append(fd)
                if len(held) == k:
                    return held, fds
        _release(fds)  # all or nothing: never sit on a partial set
        now = time.monotonic()
        if now - last_report >= report_every:
            log.info("waiting %.0f s for %d free GPU(s) among %s", now - start, k, ",".join(pool))
            last_report = now
        time.sleep(poll)


@contextlib.contextmanager
def pinned_devices(k: int) -> Iterator[List[str]]:
    """Hold k GPUs for the duration of the block (see module docstring)."""
    k = int(k or 0)
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    if k <= 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        log.info("gpu=0: running on the CPU")
        try:
            yield []
        finally:
            _restore(previous)
        return
    visible = _split(previous) if previous is not None else None
    if os.environ.get("SLURM_JOB_ID") and visible is not None and len(visible) == k:
        log.info(
            "using the GPU(s) SLURM assigned to job %s: CUDA_VISIBLE_DEVICES=%s", os.environ["SLURM_JOB_ID"], previous
        )
        yield visible
        return
    pool = device_pool()
    if not pool:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        log.warning("this job asked for %d GPU(s) but the machine has none: running on the CPU", k)
        try:
            yield []
        finally:
            _restore(previous)
        return
    devices, fds = acquire(k, pool, lock_dir())
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    log.info("pinned to GPU(s) %s", ",".join(devices))
    try:
        yield devices
    finally:
        _release(fds)
        _restore(previous)


def _restore(previous: Optional[str]) -> None:
    if previous is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = previous


def torch_device(devices: List[str]) -> str:
    """The device string for work inside a pinned block (imports torch); logs what torch sees,
    so that a job's log shows it saw its own devices only."""
    import torch

    device = "cuda" if devices and torch.cuda.is_available() else "cpu"
    if device == "cuda":
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        log.info("torch sees %d CUDA device(s): %s", len(names), "; ".join(names))
    return device
