"""Snakemake job of rule `fetch`: download a hub parent once; the receipt names its local snapshot."""

import json

from mergelab.plan.jobs import FetchJob
from mergelab.runtime.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        from mergelab.hub import fetch

        job = FetchJob.from_params(smk.params)
        receipt = fetch(
            job.repo_id, job.revision, job.patterns, job.cache_dir, retries=job.retries, wait=job.retry_wait
        )
        log.info("%s@%s is %s", job.repo_id, receipt["commit"], receipt["path"])
        with atomic_file(smk.output[0]) as fh:
            json.dump(receipt, fh, indent=2)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
