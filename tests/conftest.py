"""Shared fixtures: tiny models built on the fly, and a Snakemake runner.

Nothing here touches the network: HF_HUB_OFFLINE is set for every run, GPUs
are hidden unless a test pretends to have some (MERGELAB_GPUS), and each test
gets its own GPU lock directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SLURM_SCRIPT = REPO / "scripts" / "local_slurm.sh"


def base_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        MERGELAB_GPUS="",
        MERGELAB_GPU_LOCK_DIR=str(tmp / "gpu-locks"),
        PYTHONPATH=str(REPO / "scripts"),
        TOKENIZERS_PARALLELISM="false",
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    return env


def write_config(workdir: Path, cfg: dict, name: str = "experiment.yaml") -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path, configfile: Path | None, *args: str, env: dict | None = None, timeout: int = 900, check: bool = False
) -> subprocess.CompletedProcess:
    """Run the workflow in workdir; targets and flags go in args."""
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2"]
    cmd += list(args)
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    proc = subprocess.run(
        cmd, cwd=workdir, env=env or base_env(workdir), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def snakemake_together(*runs: tuple, check: bool = True, timeout: int = 900) -> list:
    """Independent workflow runs, each (workdir, configfile, *args) as for snakemake() and each in a
    workdir of its own, at once: their serial stretches (start-up, building the DAG, a merge before
    its evaluations, the tables and figures at the end) overlap on the cores. The finished
    processes, in the order given; check as for snakemake()."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(runs)) as pool:
        futures = [pool.submit(snakemake, *run, check=check, timeout=timeout) for run in runs]
        return [f.result() for f in futures]


def planned_jobs(output: str) -> dict:
    """rule name -> list of wildcard strings of the jobs a dry run lists."""
    jobs: dict = {}
    for block in re.split(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$|\n\s*\n", output, flags=re.M):
        m = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        if not m:
            continue
        w = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        jobs.setdefault(m.group(1), []).append(w.group(1).strip() if w else "")
    return jobs


def planned_merges(output: str) -> set:
    return {w.split("model=", 1)[1].split(",")[0] for w in planned_jobs(output).get("merge", [])}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """base, alpha, beta: tiny float32 Llama models with a real tokenizer (untrained: the base at
    random and two seeded perturbations of it, the "tiny" size of mergelab.embedded.demo)."""
    from mergelab.embedded.demo import build_demo_models

    root = tmp_path_factory.mktemp("tiny-models")
    dirs = {"base": root / "base", "alpha": root / "alpha", "beta": root / "beta"}
    build_demo_models({"base": dirs["base"], "math": dirs["alpha"], "words": dirs["beta"]}, seed=0, size="tiny")
    return dirs


def harness_settings(**over):
    """A job's HarnessSettings: the schema's defaults ($defs.settings) and ``over``."""
    from mergelab.plan.jobs import HarnessSettings
    from mergelab.plan.load import load_schema, settings_defaults

    return HarnessSettings(**{**settings_defaults(load_schema()), "revision": None, **over})


def catalogue_of(given: dict):
    """The Catalogue of a campaign that the analysis tests make up: ``given``'s keys (models, and
    model_order and stats where they matter), the models in their order unless model_order says."""
    from mergelab.plan.jobs import Catalogue

    return Catalogue(**{"model_order": list(given["models"]), "harness": {}, "holmes": {}, "stats": {}, **given})


def load_state(path: Path) -> dict:
    from safetensors.torch import load_file

    state = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        state.update(load_file(f))
    return state


def fake_model_dir(d: Path) -> Path:
    """A directory that passes the cheap model checks (mergelab.runtime.checkpoint) without torch:
    a config.json and a one-tensor model.safetensors. For plans, never for loading."""
    import json
    import struct

    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text("{}")
    head = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bytes(8))
    return d


def unloadable_copy(model_dir: Path, dest: Path) -> Path:
    """A model directory that passes every cheap check (mergelab.runtime.checkpoint) but that no
    job can load: its config names an architecture transformers does not know."""
    import json
    import shutil

    shutil.copytree(model_dir, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["model_type"] = UNKNOWN_ARCHITECTURE
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


UNKNOWN_ARCHITECTURE = "mergelab_unknown"


def bad_task_folder(tasks_dir: Path) -> Path:
    """A folder of lm-eval tasks with one task, my_bad_task, whose data file (bad.jsonl) is broken."""
    tasks_dir.mkdir(parents=True)
    (tasks_dir / "bad.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    (tasks_dir / "bad_task.yaml").write_text(
        "task: my_bad_task\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {tasks_dir / 'bad.jsonl'}\n"
        "output_type: loglikelihood_rolling\ntest_split: test\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
        "metric_list:\n  - metric: word_perplexity\n"
    )
    return tasks_dir


@pytest.fixture(scope="session")
def trained_demo(tmp_path_factory) -> Path:
    """The demo models (base, math, words), trained once per test run by the demo_models rule (about a
    minute on two cores) in a workdir of their own: its results/demo/ and logs/demo_models/, and
    console.txt, what Snakemake printed. Under tests/all.sh (MERGELAB_TEST_SHARED) the two pytest
    processes share one training: the first to take the lock trains, the other waits and reuses it."""
    shared = os.environ.get("MERGELAB_TEST_SHARED")
    if not shared:
        return _train_demo(tmp_path_factory.mktemp("demo-models"))
    return shared_demo(Path(shared))


def shared_demo(shared: Path) -> Path:
    """The demo models trained once under ``shared`` for every process that asks (a lock: the
    first trains, the others wait); tests/all.sh trains them before the tests start, while the
    machine is otherwise idle (the training slows down badly on a busy 2-core machine)."""
    import fcntl
    import shutil

    wd = shared / "demo-models"
    with open(shared / "demo-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not (wd / "trained").is_file():
            shutil.rmtree(wd, ignore_errors=True)  # what a failed attempt left
            _train_demo(wd)
            (wd / "trained").write_text("")
    return wd


def _train_demo(wd: Path) -> Path:
    cfg = {"models": {n: {"demo": n} for n in ("base", "math", "words")}, "merges": []}
    proc = snakemake(wd, write_config(wd, cfg), "demo_models", check=True, timeout=900)
    (wd / "console.txt").write_text(proc.stderr)
    return wd


def with_trained_demo(workdir: Path, trained: Path) -> None:
    """Put the shared trained demo models into workdir, as the demo_models rule would have:
    Snakemake takes outputs that exist (their times kept) as made, and does not train again."""
    import shutil

    shutil.copytree(trained / "results" / "demo", workdir / "results" / "demo")


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, trained_demo):
    """What `make run` does, in a scratch directory: every merge, evaluation, table and figure of the
    embedded default (the demo models trained once per test run, by the trained_demo fixture); run
    once per test run, for every test that reads the default campaign's results: (workdir, the
    finished snakemake process)."""
    import shutil

    wd = tmp_path_factory.mktemp("default-run")
    shutil.copytree(REPO / "config", wd / "config")  # config paths are relative to the working directory
    with_trained_demo(wd, trained_demo)
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(wd), "--cores", "2", "--quiet"]
    proc = subprocess.run(cmd, cwd=REPO, env=base_env(wd), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return wd, proc


def slurm_unavailable() -> str | None:
    """Why the local SLURM cluster (scripts/local_slurm.sh) cannot run here, or None."""
    import shutil

    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (its daemons run as root)"
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if not shutil.which(b)]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local one-node SLURM cluster, started for the session (stopped at its end if it was not
    running before): its SLURM_CONF. Skips where it cannot run, fails instead with
    MERGELAB_REQUIRE_SLURM=1 (set by .ci/run), so CI never passes by skipping."""
    reason = slurm_unavailable()
    if reason:
        if os.environ.get("MERGELAB_REQUIRE_SLURM") == "1":
            pytest.fail(f"MERGELAB_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    was_running = (
        "slurmctld: running"
        in subprocess.run([str(SLURM_SCRIPT), "status"], capture_output=True, text=True, timeout=60).stdout
    )
    proc = subprocess.run([str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    conf = proc.stdout.strip().split("=", 1)[1]
    yield conf
    if not was_running:
        subprocess.run([str(SLURM_SCRIPT), "stop"], capture_output=True, text=True, timeout=120)
