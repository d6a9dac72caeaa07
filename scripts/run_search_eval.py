"""Snakemake job of rule `search_eval`: a search trial on the dev subset of its objectives' tasks,
after one model load; one JSON, task -> lm-eval results (mergelab.search.trial_scores reads it)."""

from mergelab.evaluate.evaluation_job import evaluation_job
from mergelab.plan.jobs import HarnessModelJob
from mergelab.plan.paths import WORKFLOW_TASKS


def main(smk) -> None:
    with evaluation_job(smk, HarnessModelJob) as (job, model_dir, device, devices, log):
        from mergelab.evaluate.harness import evaluate_model
        from mergelab.search import dev_results

        log.info("dev evaluation of %s on %s (device %s)", job.model, ", ".join(job.tasks), device)
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
            res.pop("samples", None)
        dev_results(results, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
