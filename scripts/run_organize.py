"""Snakemake job of rule `organize`: the tidy tables."""

import json

from mergelab.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.outputs import build_tables

        build_tables(json.loads(smk.params.context), dict(smk.output.items()))


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
