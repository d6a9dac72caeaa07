"""Snakemake job of rule `fetch`: download a hub parent once; the receipt names its local snapshot."""

import json

from mergelab.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        from mergelab.hub import fetch

        spec = json.loads(smk.params.spec)
        receipt = fetch(spec["repo_id"], spec["revision"], spec["patterns"], spec["cache_dir"],
                        retries=spec["retries"], wait=spec["retry_wait"])
        log.info("%s@%s is %s", spec["repo_id"], receipt["commit"], receipt["path"])
        with atomic_file(smk.output[0]) as fh:
            json.dump(receipt, fh, indent=2)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
