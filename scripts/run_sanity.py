"""Snakemake job of rule `sanity_check`: the sanity check of one model (mergelab.evaluate.sanity)."""

from mergelab.plan.jobs import SanityJob
from mergelab.runtime.checkpoint import check_model_dir
from mergelab.runtime.jobs import JobError, describe_resources, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        log.info("job resources: %s", describe_resources(smk))
        job = SanityJob.from_params(smk.params)
        if job.receipt:  # a hub parent: its local snapshot
            from mergelab.hub import snapshot_path

            model_dir = snapshot_path(job.receipt)
        else:
            model_dir = job.model_path
        check_model_dir(model_dir)
        from mergelab.evaluate.sanity import broken_summary, check_model, read_reference, write_check
        from mergelab.runtime.devices import pinned_devices, torch_device

        parents = [read_reference(p) for p in job.parents]
        with pinned_devices(smk.resources.gpu) as devices:
            log.info(
                "checking %s against %d parent check(s) (device %s)", job.model, len(parents), torch_device(devices)
            )
            result = check_model(
                model_dir, parents, job.max_ppl_ratio, torch_device(devices), trust_remote_code=job.trust_remote_code
            )
        result = {"model": job.model, **result, "on_fail": job.on_fail, "max_ppl_ratio": job.max_ppl_ratio}
        result["parents"] = [p.get("model") for p in parents]
        if result["status"] == "broken":
            for r in result["reasons"]:
                log.warning("%s is broken: %s", job.model, r)
            if job.on_fail == "stop":
                what = "merge" if job.parents else "model"
                raise JobError(f"{what} {job.model} is broken: {broken_summary(result)} (sanity.on_fail: stop)")
        else:
            log.info("%s passes its sanity check (perplexity %s)", job.model, result.get("perplexity"))
        write_check(result, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
