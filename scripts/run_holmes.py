"""Snakemake job of rule `holmes_eval`: Holmes probing of one model."""

from mergelab.jobs import evaluation_job


def main(smk) -> None:
    with evaluation_job(smk) as (spec, device, devices, log):
        from mergelab.holmes import evaluate, write_scores

        log.info("probing %s on %d datasets (device %s)", spec["model"], len(spec["datasets"]), device)
        rows = evaluate(spec["model"], spec["model_path"], spec["data_dir"], spec["datasets"], spec["settings"],
                        device, threads=smk.threads, gpus=len(devices))
        write_scores(rows, smk.output[0])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
