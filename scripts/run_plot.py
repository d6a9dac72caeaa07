"""Snakemake job of rule `plot`: every figure, with its data beside it."""

from mergelab.jobs import job_log
from mergelab.plan.jobs import PlotJob


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.outputs import build_plots

        job = PlotJob.from_params(smk.params)
        build_plots(job.catalogue, dict(smk.input.items()), job.figures)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
