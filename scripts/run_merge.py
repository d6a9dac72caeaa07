"""Snakemake job of rule `merge`: one mergekit merge on the pinned device(s)."""

from mergelab.plan.jobs import MergeJob
from mergelab.runtime.jobs import describe_resources, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        log.info("job resources: %s", describe_resources(smk))
        job = MergeJob.from_params(smk.params)
        from mergelab.runtime.devices import pinned_devices, torch_device

        with pinned_devices(smk.resources.gpu) as devices:
            from mergelab.merging.merge import local_snapshots, run_merge

            run_merge(
                local_snapshots(job.mergekit_config, job.hub_receipts),
                smk.output[0],
                seed=job.seed,
                cuda=torch_device(devices) == "cuda",
                threads=smk.threads,
                meta=job.card,
            )


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
