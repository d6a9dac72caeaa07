"""GPU pinning: distinct devices per running job, SLURM's choice respected, CPU fallback."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, base_env
from mergelab.runtime import devices
from mergelab.runtime.devices import DeviceError, pinned_devices


@pytest.fixture()
def gpu_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGELAB_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("MERGELAB_GPUS", "0,1,2,3")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    return tmp_path / "locks"


def assert_no_overlap(records):
    by_device = {}
    for r in records:
        assert len(r["devices"]) == r["k"], r
        assert r["cvd"] == ",".join(r["devices"]), r
        for d in r["devices"]:
            by_device.setdefault(d, []).append((r["start"], r["end"]))
    for d, spans in by_device.items():
        spans.sort()
        for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
            assert s1 >= e0, f"device {d} held twice at once: {(s0, e0)} and {(s1, e1)}"
    return by_device


def max_concurrency(records):
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    cur = best = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def test_zero_gpus_hides_every_device(gpu_env):
    with pinned_devices(0) as held:
        assert held == [] and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_no_gpu_on_the_machine_runs_on_cpu(gpu_env, monkeypatch):
    monkeypatch.setenv("MERGELAB_GPUS", "")
    with pinned_devices(1) as held:
        assert held == [] and os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_slurm_assignment_is_used_as_is(gpu_env, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pinned_devices(2) as held:
        assert held == ["2", "3"] and os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
        assert not gpu_env.exists() or not list(gpu_env.iterdir())  # no locks taken
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_visible_devices_are_the_pool_outside_slurm(gpu_env, monkeypatch):
    monkeypatch.delenv("MERGELAB_GPUS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert devices.device_pool() == ["5", "7"]
    with pinned_devices(1) as held:
        assert held == ["5"] and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
        # another job meanwhile gets the other one
        other, fds = devices.acquire(1, ["5", "7"], gpu_env)
        assert other == ["7"]
        devices._release(fds)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"
    with pytest.raises(DeviceError, match="needs 3 GPU"):
        with pinned_devices(3):
            pass


def _hold(k, out, pause):
    with pinned_devices(k) as held:
        start = time.time()
        cvd = os.environ["CUDA_VISIBLE_DEVICES"]
        time.sleep(pause)
        end = time.time()
    Path(out).write_text(json.dumps({"devices": held, "cvd": cvd, "start": start, "end": end, "k": k}))


def test_oversubscribed_jobs_wait_for_free_devices(gpu_env, tmp_path):
    # 12 jobs (8 x 1 GPU, 4 x 2 GPUs) all at once on 4 devices, no scheduler limit:
    # the locks alone must keep every device to one job at a time.
    ctx = mp.get_context("spawn")
    procs = []
    for i, k in enumerate([1] * 8 + [2] * 4):
        p = ctx.Process(target=_hold, args=(k, tmp_path / f"r{i}.json", 0.3))
        p.start()
        procs.append(p)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(12)]
    assert_no_overlap(records)
    assert max_concurrency(records) > 1


def test_killed_job_releases_its_devices(gpu_env, tmp_path):
    ready = tmp_path / "ready"
    code = (
        "import sys, time, pathlib\n"
        f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "from mergelab.runtime.devices import pinned_devices\n"
        "with pinned_devices(4):\n"
        f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    try:
        for _ in range(300):
            if ready.exists():
                break
            time.sleep(0.05)
        assert ready.exists()
        fds = devices._try_lock(gpu_env / "gpu-0.lock")
        assert fds is None  # held by the child
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with pinned_devices(4) as held:
            assert held == ["0", "1", "2", "3"]
    finally:
        proc.kill()


@pytest.mark.workflow
def test_snakemake_jobs_hold_distinct_devices(tmp_path):
    env = base_env(tmp_path)
    env["MERGELAB_GPUS"] = "0,1,2,3"
    wd = tmp_path / "wd"
    wd.mkdir()
    cmd = SNAKEMAKE + [
        "--snakefile",
        str(REPO / "tests/data/pinning/Snakefile"),
        "--directory",
        str(wd),
        "--cores",
        "8",
        "--resources",
        "gpu=4",
        "--quiet",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted((wd / "out").glob("*.json"))]
    assert len(records) == 12
    by_device = assert_no_overlap(records)
    assert set(by_device) == {"0", "1", "2", "3"}
    assert max_concurrency(records) >= 3
