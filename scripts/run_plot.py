"""Snakemake job of rule `plot`: every figure, with its data beside it."""

from mergelab.plan.jobs import PlotJob
from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.analysis.outputs import build_plots

        job = PlotJob.from_params(smk.params)
        build_plots(job.catalogue, dict(smk.input.items()), job.figures)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
