"""Snakemake job of rule `merge_record`: what stays of a merge whose weights are deleted
(storage.keep_merges): its card, mergekit config, and every file's size and sha256."""

from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.merging.storage import write_record

        write_record(smk.wildcards.model, smk.input.model, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
