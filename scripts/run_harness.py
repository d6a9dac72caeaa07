"""Snakemake job of rules `harness_eval` / `harness_eval_samples`: lm-eval on one (model, task)."""

from mergelab.jobs import evaluation_job


def main(smk) -> None:
    with evaluation_job(smk) as (spec, device, devices, log):
        from mergelab.harness import evaluate, write_results

        log.info("evaluating %s on %s (device %s)", spec["model"], spec["task"], device)
        results = evaluate(
            spec["model_path"],
            spec["task"],
            spec["settings"],
            include_paths=spec["include_paths"],
            include_defaults=spec["include_defaults"],
            device=device,
            gpus=len(devices),
            check_task=not spec["include_defaults"],
            threads=smk.threads,
        )
        results["mergelab"]["model"] = spec["model"]
        write_results(results, smk.output.json, smk.output.get("samples"))


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
