"""Snakemake job of rule `holmes_data`: obtain and validate the probing datasets, write their manifest."""

import csv
from pathlib import Path

from mergelab.plan.jobs import HolmesDataJob
from mergelab.runtime.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        from mergelab.evaluate.holmes_data import manifest_rows, obtain, resolve_datasets

        job = HolmesDataJob.from_params(smk.params)
        folder = obtain(job.version, Path(job.root), Path(job.archive) if job.archive else None, job.url)
        rows = manifest_rows(folder, resolve_datasets(folder, job.datasets))
        log.info("%d datasets valid in %s", len(rows), folder)
        with atomic_file(smk.output[0], newline="") as fh:
            writer = csv.DictWriter(
                fh, fieldnames=list(rows[0]) if rows else ["probing_dataset"], delimiter="\t", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
