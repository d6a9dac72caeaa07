"""Snakemake job of rule `merges_table`: results/merges.tsv (merge id -> mergekit config, seed)."""

from mergelab.plan.jobs import MergesTableJob
from mergelab.plan.models import merges_tsv
from mergelab.runtime.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        job = MergesTableJob.from_params(smk.params)
        with atomic_file(smk.output[0]) as fh:
            fh.write(merges_tsv(job.merges))


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
