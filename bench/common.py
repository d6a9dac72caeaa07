"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO / "scripts"))


def env() -> dict:
    from mergelab.outputs import subprocess_env

    e = dict(subprocess_env(REPO / "scripts"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    e.setdefault("MERGELAB_GPU_LOCK_DIR", str(OUT / "gpu-locks"))
    return e


def timed(cmd, **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return time.perf_counter() - t0


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def median(xs) -> float:
    return statistics.median(xs)


def demo_models(size: str) -> Path:
    """The demo base/math/words at ``size``, built once under bench/out/ (trained for size "demo")."""
    from mergelab.demo import DEMO_NAMES, build_demo_models

    root = OUT / f"models-{size}"
    if not all((root / n / "model.safetensors").exists() for n in DEMO_NAMES):
        build_demo_models({n: root / n for n in DEMO_NAMES}, seed=0, size=size)
    return root


def workdir(name: str, cfg: dict) -> tuple:
    """A scratch working directory with cfg as its experiment.yaml: (dir, config path)."""
    import yaml

    wd = OUT / name
    wd.mkdir(parents=True, exist_ok=True)
    path = wd / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return wd, path
