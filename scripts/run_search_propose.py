"""Snakemake job of checkpoint `search_propose`: one generation of a merge search. Tells Optuna the
previous generation's scores, asks for this generation's trials (mergelab.search)."""

from mergelab.plan.jobs import SearchProposeJob
from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from mergelab.search import dev_files, propose

        job = SearchProposeJob.from_params(smk.params)
        files = dev_files(job.told, smk.input.get("dev", []), smk.input.get("probe", []))
        propose(job, smk.input.get("journal"), files, smk.output.proposals, smk.output.journal)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
