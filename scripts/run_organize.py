"""Snakemake job of rule `organize`: the tidy tables."""

from mergelab.jobs import job_log
from mergelab.plan.jobs import OrganizeJob


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.outputs import build_tables, remove_partial

        job = OrganizeJob.from_params(smk.params)
        build_tables(job.catalogue, job.files, dict(smk.output.items()))
        remove_partial()


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
