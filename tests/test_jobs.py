"""Jobs log to their log file, leave nothing half-written, and fail with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import base_env
from mergelab.runtime.jobs import atomic_dir, atomic_file


def test_atomic_dir_keeps_nothing_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "whole.bin").write_bytes(b"y")
    assert (final / "whole.bin").read_bytes() == b"y" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_file_keeps_nothing_on_failure(tmp_path):
    final = tmp_path / "t.tsv"
    with pytest.raises(RuntimeError):
        with atomic_file(final) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def run_job(code: str, tmp_path: Path, **kw):
    script = tmp_path / "job.py"
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=base_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_failure_gives_one_line_and_the_traceback_in_the_log(tmp_path):
    log = tmp_path / "logs" / "j.log"
    proc = run_job(
        "from mergelab.runtime.jobs import job_log, JobError\n"
        f"with job_log({str(log)!r}):\n"
        "    print('working')\n"
        "    raise JobError('input model directory does not exist: /x')\n",
        tmp_path,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip() == f"mergelab: input model directory does not exist: /x (log: {log})"
    text = log.read_text()
    assert "working" in text and "Traceback" in text and "JobError" in text


@pytest.mark.slow
def test_terminated_merge_leaves_no_output(tmp_path):
    """SIGTERM (what Snakemake and SLURM send) in the middle of writing a merge."""
    from mergelab.embedded.demo import build_demo_models

    models = {n: tmp_path / n for n in ("base", "math")}
    build_demo_models(models, seed=0, size="bench")
    out = tmp_path / "results" / "merged"
    partial = out.parent / f".{out.name}.partial"
    cfg = {
        "merge_method": "task_arithmetic",
        "base_model": str(models["base"]),
        "dtype": "float32",
        "models": [{"model": str(models["math"]), "parameters": {"weight": 0.5}}],
    }
    proc = run_job(
        "from mergelab.runtime.jobs import job_log\n"
        "from mergelab.merging.merge import run_merge\n"
        f"with job_log({str(tmp_path / 'merge.log')!r}):\n"
        f"    run_merge({cfg!r}, {str(out)!r}, seed=0, cuda=False, threads=1)\n",
        tmp_path,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not partial.exists() and proc.poll() is None:
            time.sleep(0.01)
        assert partial.exists() and proc.poll() is None, "the merge finished before it could be stopped"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert not out.exists() and not partial.exists()
