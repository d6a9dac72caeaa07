"""Snakemake job of rule `organize`: the tidy tables."""

from mergelab.plan.jobs import OrganizeJob
from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.analysis.outputs import build_tables, remove_partial

        job = OrganizeJob.from_params(smk.params)
        build_tables(job.catalogue, job.files, dict(smk.output.items()))
        remove_partial()


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
