"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO / "scripts"))


def env() -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO / "scripts"))
    e.setdefault("MERGELAB_GPU_LOCK_DIR", str(OUT / "gpu-locks"))
    return e


def timed(cmd, **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return time.perf_counter() - t0


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile), *args]


def median(xs) -> float:
    return statistics.median(xs)
