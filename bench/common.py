"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# where the scripts work and keep what they build once (the tests point it at a tmp dir)
OUT = Path(os.environ.get("MERGELAB_BENCH_OUT") or REPO / "bench" / "out")
sys.path.insert(0, str(REPO / "scripts"))


def parse_args(ap: argparse.ArgumentParser, doc: str = "", **quick) -> argparse.Namespace:
    """ap's arguments and --quick: seconds and tiny sizes, so that the script is run by the tests
    (tests/test_bench.py) and cannot rot; its numbers mean nothing. With --quick, ``quick``
    replaces the script's defaults (flags given on the command line still win); doc: how --help
    shows them (default: --name value each)."""
    shown = doc or " ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
    ap.add_argument(
        "--quick", action="store_true", help="seconds, tiny sizes, for the tests" + (f" ({shown})" if shown else "")
    )
    args = ap.parse_args()
    if args.quick:
        ap.set_defaults(**quick)
        args = ap.parse_args()
    return args


def env() -> dict:
    from mergelab.analysis.outputs import subprocess_env

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
    from mergelab.embedded.demo import DEMO_NAMES, build_demo_models

    root = OUT / f"models-{size}"
    if not all((root / n / "model.safetensors").exists() for n in DEMO_NAMES):
        build_demo_models({n: root / n for n in DEMO_NAMES}, seed=0, size=size)
    return root


def default_campaign(name: str, quick: bool = False) -> Path:
    """A fresh working directory OUT/name with a copy of config/, the embedded default (its paths
    are relative to the working directory); quick: that config cut down by quick_default."""
    import yaml

    wd = OUT / name
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    shutil.copytree(REPO / "config", wd / "config")
    if quick:
        path = wd / "config" / "experiment.yaml"
        path.write_text(yaml.safe_dump(quick_default(yaml.safe_load(path.read_text())), sort_keys=False))
    return wd


def quick_default(cfg: dict) -> dict:
    """The embedded default cut down to seconds, its shape and choices (harness.jobs, tasks,
    settings) kept: the tiny untrained demo models instead of the trained ones, its first recipe
    with its first method and only that merge evaluated, no search, Holmes off, a few documents
    per task."""
    tiny = demo_models("tiny")
    cfg = dict(cfg)
    cfg["models"] = {
        m: {"path": str(tiny / spec["demo"])} if "demo" in spec else spec for m, spec in cfg["models"].items()
    }
    methods = cfg["merges"][0]["methods"][:1]
    first = {k: v for k, v in cfg["merges"][0].items() if k != "moe" or "moe" in methods}
    first["methods"] = methods
    kept = {m: p for m, p in first.pop("method_parameters", {}).items() if m in methods}
    cfg["merges"] = [first | ({"method_parameters": kept} if kept else {})]
    cfg.pop("search", None)
    cfg["evaluation"] = dict(cfg.get("evaluation") or {}, models=[first["name"]])
    harness = dict(cfg.get("harness") or {})
    harness["settings"] = dict(harness.get("settings") or {}, limit=8, bootstrap_iters=0)
    cfg["harness"] = harness
    cfg["holmes"] = dict(cfg.get("holmes") or {}, activate=False)
    cfg["stats"] = dict(cfg.get("stats") or {}, bootstrap=200)
    return cfg


def workdir(name: str, cfg: dict) -> tuple:
    """A scratch working directory with cfg as its experiment.yaml: (dir, config path)."""
    import yaml

    wd = OUT / name
    wd.mkdir(parents=True, exist_ok=True)
    path = wd / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return wd, path
