"""Snakemake job of rule `merge`: one mergekit merge on the pinned device(s)."""

import json

from mergelab.jobs import describe_resources, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        log.info("job resources: %s", describe_resources(smk))
        from mergelab.devices import pinned_devices, torch_device

        with pinned_devices(smk.resources.gpu) as devices:
            from mergelab.merge import local_snapshots, run_merge

            cfg = local_snapshots(json.loads(smk.params.config), json.loads(smk.params.receipts))
            run_merge(
                cfg,
                smk.output[0],
                seed=int(smk.params.seed),
                cuda=torch_device(devices) == "cuda",
                threads=smk.threads,
                meta=json.loads(smk.params.meta),
            )


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
