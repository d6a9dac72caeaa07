"""Snakemake job of rule `harness_eval_model` (harness.jobs: per_model): every harness task of
one model after one model load, one results JSON per task, as `harness_eval` writes it."""

from mergelab.evaluate.evaluation_job import evaluation_job
from mergelab.plan.jobs import HarnessModelJob
from mergelab.plan.paths import WORKFLOW_TASKS


def main(smk) -> None:
    with evaluation_job(smk, HarnessModelJob) as (job, model_dir, device, devices, log):
        from mergelab.evaluate.harness import evaluate_model, write_model_results

        log.info("evaluating %s on %s (device %s)", job.model, ", ".join(job.tasks), device)
        results = evaluate_model(
            model_dir,
            job.groups,
            job.settings,
            include_paths=[str(WORKFLOW_TASKS)] + job.include_paths,
            include_defaults=job.include_defaults,
            device=device,
            gpus=len(devices),
            check_tasks=job.local_tasks,
            threads=smk.threads,
        )
        for res in results.values():
            res["mergelab"]["model"] = job.model
        samples, items = list(smk.output.get("samples", [])), list(smk.output.per_item)
        write_model_results(results, list(smk.output.json), samples, items)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
