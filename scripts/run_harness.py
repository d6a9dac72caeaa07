"""Snakemake job of rules `harness_eval` / `harness_eval_samples`: lm-eval on one (model, task)."""

from mergelab.evaluate.evaluation_job import evaluation_job
from mergelab.plan.jobs import HarnessJob
from mergelab.plan.paths import WORKFLOW_TASKS


def main(smk) -> None:
    with evaluation_job(smk, HarnessJob) as (job, model_dir, device, devices, log):
        from mergelab.evaluate.harness import evaluate, write_results

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
        write_results(results, smk.output.json, smk.output.get("samples"), items_path=smk.output.per_item)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
