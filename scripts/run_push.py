"""Snakemake job of rule `push`: upload one merge to the Hub; the receipt is written only on success."""

import json

from mergelab.plan.jobs import PushJob
from mergelab.runtime.jobs import JobError, atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        from mergelab.hub import push, token

        if not token():
            raise JobError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
        job = PushJob.from_params(smk.params)
        receipt = push(
            smk.input.model,
            job.repo_id,
            private=job.private,
            message=job.message,
            retries=job.retries,
            wait=job.retry_wait,
        )
        log.info("pushed to %s (commit %s)", receipt["url"], receipt["commit_id"])
        with atomic_file(smk.output[0]) as fh:
            json.dump(receipt, fh, indent=2)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
