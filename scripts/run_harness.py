"""Snakemake job of rules `harness_eval` / `harness_eval_samples`: lm-eval on one (model, task)."""

import json

from mergelab.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        spec = json.loads(smk.params.spec)
        from mergelab.harness import check_model_dir

        if spec["local"]:
            check_model_dir(spec["model_path"])
        from mergelab.devices import pinned_devices, torch_device

        with pinned_devices(smk.resources.gpu) as devices:
            from mergelab.harness import evaluate, write_results

            device = torch_device(devices)
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
