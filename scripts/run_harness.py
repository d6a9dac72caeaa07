"""Snakemake job of rule `harness_eval` / `harness_eval_samples`: lm-eval on one (model, task)."""

import json

from mergelab.jobs import atomic_file, evaluation_job, skip_if_broken, skipped_record
from mergelab.plan.jobs import HarnessJob
from mergelab.plan.paths import WORKFLOW_TASKS


def write_skipped(smk):
    """A broken merge's result, marked skipped (sanity.on_fail: skip): no lm-eval."""

    def write(job, check):
        if smk.output.get("samples"):
            with atomic_file(smk.output.samples):
                pass
        with atomic_file(smk.output.json) as fh:
            json.dump({"results": {}, "mergelab": {**skipped_record(job, check), "task": job.task}}, fh, indent=2)
            fh.write("\n")

    return write


def main(smk) -> None:
    if skip_if_broken(smk, HarnessJob, write_skipped(smk)):
        return
    with evaluation_job(smk, HarnessJob) as (job, model_dir, device, devices, log):
        from mergelab.harness import evaluate, write_results

        log.info("evaluating %s on %s (device %s)", job.model, job.task, device)
        results = evaluate(
            model_dir,
            job.task,
            job.settings,
            include_paths=[str(WORKFLOW_TASKS)] + job.include_paths,
            include_defaults=job.include_defaults,
            device=device,
            gpus=len(devices),
            check_task=not job.include_defaults,
            threads=smk.threads,
        )
        results["mergelab"]["model"] = job.model
        write_results(results, smk.output.json, smk.output.get("samples"))


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
