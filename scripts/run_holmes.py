"""Snakemake job of rule `holmes_eval`: Holmes probing of one model."""

from mergelab.evaluate.evaluation_job import evaluation_job
from mergelab.plan.jobs import HolmesJob


def main(smk) -> None:
    with evaluation_job(smk, HolmesJob) as (job, model_dir, device, devices, log):
        from mergelab.evaluate.holmes import evaluate, write_scores
        from mergelab.evaluate.holmes_data import read_manifest

        datasets = [r["probing_dataset"] for r in read_manifest(smk.input.manifest)]  # validated by holmes_data
        log.info("probing %s on %d datasets (device %s)", job.model, len(datasets), device)
        rows = evaluate(
            job.model,
            model_dir,
            job.data_dir,
            datasets,
            job.settings,
            device,
            threads=smk.threads,
            gpus=len(devices),
        )
        write_scores(rows, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
