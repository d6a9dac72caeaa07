"""What every job script does around its work: log to its log file, write
outputs atomically, and turn termination signals into clean exits."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Iterator


class JobError(Exception):
    """An expected failure inside a job; its message is shown to the user as is."""


def _raise_exit(signum, frame):  # pragma: no cover - exercised through subprocesses
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def job_log(path: os.PathLike, name: str = "mergelab", console: str = "") -> Iterator[logging.Logger]:
    """Send stdout, stderr (file descriptors too: tqdm, C libraries) and logging to ``path``.

    With ``console`` (a prefix, e.g. the rule's name), the job's own log records also go
    to the Snakemake console: progress of a long local job that the user watches.

    On an exception the traceback goes to the log and one line naming the log
    goes to the original stderr, so the Snakemake console stays readable.
    SIGTERM/SIGINT become SystemExit so that cleanup code (atomic outputs,
    device locks) runs when Snakemake or SLURM stops the job.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    fh = open(path, "a", buffering=1, encoding="utf-8")
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)
    old_handlers = {s: signal.signal(s, _raise_exit) for s in (signal.SIGTERM, signal.SIGINT)}
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    log = logging.getLogger(name)
    echo = None
    if console:
        echo = logging.StreamHandler(os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8"))
        echo.setFormatter(logging.Formatter(f"[{console}] %(message)s"))
        log.addHandler(echo)
    failed = None
    try:
        yield log
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        traceback.print_exc()
        summary = str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}"
        failed = f"mergelab: {summary.splitlines()[0] if summary else type(exc).__name__} (log: {path})\n"
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if echo is not None:
            log.removeHandler(echo)
            echo.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        fh.close()
    if failed:
        # the traceback is in the log; the console gets one line and the exit code
        sys.stderr.write(failed)
        sys.stderr.flush()
        raise SystemExit(code)


@contextlib.contextmanager
def atomic_dir(final: os.PathLike) -> Iterator[Path]:
    """Yield a scratch directory that becomes ``final`` only if the block succeeds.

    The scratch directory sits beside ``final`` (same file system, so the
    rename is atomic) and is removed on failure; a stale one left by a
    SIGKILL is removed by the next attempt.
    """
    final = Path(final)
    tmp = final.parent / f".{final.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_file(final: os.PathLike, mode: str = "w", **kw) -> Iterator:
    """Open a scratch file that replaces ``final`` only when the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial"
    try:
        with open(tmp, mode, **kw) as fh:
            yield fh
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def describe_resources(smk) -> str:
    """The job's resources as Snakemake evaluated them (from the model size) and, under SLURM, its job id."""
    res = {k: smk.resources.get(k) for k in ("gpu", "mem_mb", "runtime")}
    text = " ".join(f"{k}={v}" for k, v in res.items() if v is not None) + f" threads={smk.threads}"
    if os.environ.get("SLURM_JOB_ID"):
        text += f" slurm_job={os.environ['SLURM_JOB_ID']}"
    return text
