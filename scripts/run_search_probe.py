"""Snakemake job of rule `search_probe`: Holmes probing of a search trial on the datasets of its
objectives' competences; one JSON, competence -> mean F1 (mergelab.search.trial_scores reads it)."""

from mergelab.evaluate.evaluation_job import evaluation_job
from mergelab.plan.jobs import SearchProbeJob


def main(smk) -> None:
    with evaluation_job(smk, SearchProbeJob) as (job, model_dir, device, devices, log):
        from mergelab.evaluate.holmes import evaluate
        from mergelab.evaluate.holmes_data import read_manifest
        from mergelab.search import competence_scores, probe_datasets, write_probe

        manifest = read_manifest(smk.input.manifest)
        datasets = probe_datasets(manifest, job.competences)
        log.info(
            "probing %s on %d datasets of %s (device %s)", job.model, len(datasets), ", ".join(job.competences), device
        )
        rows = evaluate(
            job.model, model_dir, job.data_dir, datasets, job.settings, device, threads=smk.threads, gpus=len(devices)
        )
        write_probe(competence_scores(rows, manifest, job.competences), rows, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
