"""Snakemake job of checkpoint `search_summary`: the last generation's scores told, then
trials.csv, best.yaml and the whole study's journal (mergelab.search)."""

from mergelab.plan.jobs import SearchSummaryJob
from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.search import dev_files, summarize

        job = SearchSummaryJob.from_params(smk.params)
        every = list(range(job.search["trials"]))
        files = dev_files(every, smk.input.get("dev", []), smk.input.get("probe", []))
        summarize(job, smk.input.journal, files, smk.output.trials, smk.output.best, smk.output.journal)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
