"""What an evaluation job (harness, Holmes, sanity-checked merges) runs in: its log, its spec,
the checked directory of the model it evaluates, its pinned devices; the Hub offline and the
request cache for a harness job; and the outputs of an evaluation skipped because its merge's
sanity check found it broken. The job scripts (scripts/run_harness*.py, run_holmes.py,
run_search_*.py) call evaluation_job; the tools themselves load inside them."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from mergelab.evaluate.harness_env import REQUEST_CACHE, check_receipts, finish_request_cache, go_offline, use_cache_dir
from mergelab.evaluate.holmes import write_scores
from mergelab.evaluate.items import write_items
from mergelab.evaluate.sanity import broken_summary, skipped_by
from mergelab.hub import snapshot_path
from mergelab.plan.load import fill_defaults, load_schema
from mergelab.runtime.checkpoint import check_model_dir
from mergelab.runtime.devices import pinned_devices, torch_device
from mergelab.runtime.jobs import atomic_file, describe_resources, job_log


@contextlib.contextmanager
def evaluation_job(smk, spec_class):
    """What an evaluation job runs in: its log, its spec (``spec_class``, a
    mergelab.plan.jobs.EvaluationJob, from the rule's params), the directory of the
    model it evaluates (checked), and its pinned devices.
    Yields (spec, model_dir, device, devices, log).

    A merge that its sanity check found broken, with sanity.on_fail: skip, is not loaded:
    the job writes its outputs marked skipped and ends here (exit 0)."""
    if skip_if_broken(smk, spec_class, write_skipped(smk)):
        raise SystemExit(0)
    with job_log(smk.log[0]) as log:
        log.info("job resources: %s", describe_resources(smk))
        spec = spec_class.from_params(smk.params)
        if spec.receipt:  # a hub parent: its local snapshot, fetched by the fetch rule
            model_dir = snapshot_path(spec.receipt)
        else:
            model_dir = spec.model_path
        check_model_dir(model_dir)
        harness = hasattr(spec, "include_defaults")  # a harness job (HarnessJob, HarnessModelJob)
        if harness:
            prepare_harness_job(smk, spec, log)
        with pinned_devices(smk.resources.gpu) as devices:
            yield spec, model_dir, torch_device(devices), devices, log
        if harness:  # the outputs are written: the request cache has served its purpose
            finish_request_cache()


def harness_settings(config) -> dict:
    """The config's harness.data and harness.cache, defaults filled in (the job reads them from
    Snakemake's config, not from params: where data and caches live never decides a rerun)."""
    h = fill_defaults({"harness": dict((config or {}).get("harness") or {})}, load_schema())["harness"]
    return {"data": h["data"], "cache": h["cache"]}


def prepare_harness_job(smk, spec, log) -> None:
    """Before lm-eval loads: the Hub offline (task data comes from harness_data's receipts, which
    are checked here), and lm-eval's request cache for this job (mergelab.evaluate.harness_env.REQUEST_CACHE)."""
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
    """What a skipped evaluation's result records (mergelab.analysis.organize reads it as broken)."""
    return {"model": spec.model, "skipped": True, "status": "broken", "reasons": list(check.get("reasons") or [])}


def _as_list(files) -> list:
    return [] if not files else [files] if isinstance(files, str) else list(files)


def write_skipped(smk):
    """The writer of a skipped evaluation's outputs: a harness job's JSON marked skipped (an
    empty per-item table and empty samples), a Holmes job's scores with the header only.
    Neither loads a tool."""

    def write(spec, check):
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
            write_scores([], smk.output[0])

    return write
