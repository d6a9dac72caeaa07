"""Snakemake job of rule `plot`: every figure, with its data beside it."""

import json

from mergelab.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.outputs import build_plots

        spec = json.loads(smk.params.spec)
        build_plots(json.loads(smk.params.context), spec["tables"], spec["stems"])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
