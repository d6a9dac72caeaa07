"""Snakemake job of rule `merges_table`: results/merges.tsv (merge id -> mergekit config, seed)."""

from mergelab.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        with atomic_file(smk.output[0]) as fh:
            fh.write(smk.params.table)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
