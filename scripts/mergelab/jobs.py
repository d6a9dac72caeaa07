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


def check_model_dir(path: str) -> None:
    """One clear line naming the file when a model directory cannot be loaded (before loading
    anything): mergelab.checkpoint's checks of config.json, the index and the safetensors headers."""
    from mergelab.checkpoint import CheckpointError
    from mergelab.checkpoint import check_model_dir as check

    try:
        check(path)
    except CheckpointError as e:
        raise JobError(str(e)) from None


def describe_resources(smk) -> str:
    """The job's resources as Snakemake evaluated them (from the model size) and, under SLURM, its job id."""
    res = {k: smk.resources.get(k) for k in ("gpu", "mem_mb", "runtime")}
    text = " ".join(f"{k}={v}" for k, v in res.items() if v is not None) + f" threads={smk.threads}"
    if os.environ.get("SLURM_JOB_ID"):
        text += f" slurm_job={os.environ['SLURM_JOB_ID']}"
    return text


@contextlib.contextmanager
def evaluation_job(smk, spec_class):
    """What an evaluation job runs in: its log, its spec (``spec_class``, a
    mergelab.plan.jobs.EvaluationJob, from the rule's params), the directory of the
    model it evaluates (checked), and its pinned devices.
    Yields (spec, model_dir, device, devices, log).

    A merge that its sanity check found broken, with sanity.on_fail: skip, is not loaded:
    the job writes its outputs marked skipped and ends here (exit 0), so that the job
    scripts need no change (Snakemake's code trigger would rerun every finished evaluation)."""
    if skip_if_broken(smk, spec_class, write_skipped(smk)):
        raise SystemExit(0)
    with job_log(smk.log[0]) as log:
        log.info("job resources: %s", describe_resources(smk))
        spec = spec_class.from_params(smk.params)
        if spec.receipt:  # a hub parent: its local snapshot, fetched by the fetch rule
            from mergelab.hub import snapshot_path

            model_dir = snapshot_path(spec.receipt)
        else:
            model_dir = spec.model_path
        check_model_dir(model_dir)
        harness = hasattr(spec, "include_defaults")  # a harness job (HarnessJob, HarnessModelJob)
        if harness:
            prepare_harness_job(smk, spec, log)
        from mergelab.devices import pinned_devices, torch_device

        with pinned_devices(smk.resources.gpu) as devices:
            yield spec, model_dir, torch_device(devices), devices, log
        if harness:  # the outputs are written: the request cache has served its purpose
            from mergelab.harness_env import finish_request_cache

            finish_request_cache()


def harness_settings(config) -> dict:
    """The config's harness.data and harness.cache, defaults filled in (the job reads them from
    Snakemake's config, not from params: where data and caches live never decides a rerun)."""
    from mergelab.plan.load import fill_defaults, load_schema

    h = fill_defaults({"harness": dict((config or {}).get("harness") or {})}, load_schema())["harness"]
    return {"data": h["data"], "cache": h["cache"]}


def prepare_harness_job(smk, spec, log) -> None:
    """Before lm-eval loads: the Hub offline (task data comes from harness_data's receipts, which
    are checked here), and lm-eval's request cache for this job (mergelab.harness_env.REQUEST_CACHE)."""
    from mergelab.harness_env import REQUEST_CACHE, check_receipts, go_offline, use_cache_dir

    s = harness_settings(getattr(smk, "config", None))
    cache_dir = s["data"]["cache_dir"]
    cache_dir = str(Path(os.path.expanduser(cache_dir)).resolve()) if cache_dir else None
    if s["data"]["offline"]:
        go_offline(cache_dir)
    else:
        log.info("the Hub stays online in this job (harness.data.offline: false)")
        use_cache_dir(cache_dir)
    check_receipts(_as_list(smk.input.get("data")))
    c = s["cache"]
    REQUEST_CACHE.clear()
    if c["activate"]:
        root = Path(os.path.expanduser(c["dir"])).resolve()
        REQUEST_CACHE.update(root=str(root), model=spec.model, keep=bool(c["keep"]))
        log.info("request cache under %s (harness.cache)", root)


def skip_if_broken(smk, spec_class, write) -> bool:
    """For an evaluation job of a merge whose sanity check (input ``check``) found it broken
    with sanity.on_fail: skip: log why, ``write(spec, check)`` its outputs marked skipped, and
    return True - without loading the model. False otherwise (the job runs as usual)."""
    from mergelab.sanity import broken_summary, skipped_by

    checks = list(smk.input.get("check") or [])
    check = skipped_by(checks[0]) if checks else None
    if check is None:
        return False
    with job_log(smk.log[0]) as log:
        spec = spec_class.from_params(smk.params)
        log.warning(
            "skipped: %s is broken (%s; %s); the model is not loaded (sanity.on_fail: skip)",
            spec.model,
            broken_summary(check),
            checks[0],
        )
        write(spec, check)
    return True


def skipped_record(spec, check) -> dict:
    """What a skipped evaluation's result records (mergelab.organize reads it as broken)."""
    return {"model": spec.model, "skipped": True, "status": "broken", "reasons": list(check.get("reasons") or [])}


def _as_list(files) -> list:
    return [] if not files else [files] if isinstance(files, str) else list(files)


def write_skipped(smk):
    """The writer of a skipped evaluation's outputs: a harness job's JSON marked skipped (an
    empty per-item table and empty samples), a Holmes job's scores with the header only.
    Neither loads a tool."""
    import json

    def write(spec, check):
        from mergelab.items import write_items

        if "json" in smk.output.keys():
            for path in _as_list(smk.output.get("samples")):
                with atomic_file(path):
                    pass
            for path in _as_list(smk.output.get("per_item")):
                write_items([], path)
            tasks = list(getattr(spec, "tasks", None) or [getattr(spec, "task", None)])
            for task, path in zip(tasks, _as_list(smk.output.json)):  # per_model: one per task, in order
                record = {**skipped_record(spec, check), "task": task}
                with atomic_file(path) as fh:
                    json.dump({"results": {}, "mergelab": record}, fh, indent=2)
                    fh.write("\n")
        else:
            from mergelab.holmes import write_scores

            write_scores([], smk.output[0])

    return write
