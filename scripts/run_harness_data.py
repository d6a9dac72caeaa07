"""Snakemake job of rule `harness_data`: download the Hub datasets of one harness task (all its
subtasks'), once, on the machine that runs snakemake; the receipt names what was fetched."""

from mergelab.plan.jobs import HarnessDataJob
from mergelab.plan.paths import WORKFLOW_TASKS
from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        from mergelab.evaluate.harness_data import fetch_task_data, write_receipt

        job = HarnessDataJob.from_params(smk.params)
        log.info("fetching the datasets of task %s", job.task)
        receipt = fetch_task_data(
            job.task, [str(WORKFLOW_TASKS)] + job.include_paths, job.include_defaults, job.cache_dir, log=log
        )
        if not receipt["datasets"]:
            log.info("task %s reads no dataset from the Hub", job.task)
        write_receipt(receipt, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
