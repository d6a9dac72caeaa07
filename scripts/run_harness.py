"""Snakemake job of rules `harness_eval` / `harness_eval_samples`: lm-eval on one (model, task);
and of rule `harness_eval_model` (harness.jobs: per_model): every task of one model after one
model load, one results JSON per task, as `harness_eval` writes it."""

from mergelab.jobs import evaluation_job
from mergelab.plan.jobs import HarnessJob, HarnessModelJob
from mergelab.plan.paths import WORKFLOW_TASKS


def as_list(files) -> list:
    return [files] if isinstance(files, str) else list(files)


def main(smk) -> None:
    spec = HarnessModelJob if smk.rule == "harness_eval_model" else HarnessJob
    with evaluation_job(smk, spec) as (job, model_dir, device, devices, log):
        from mergelab.harness import evaluate_model, write_model_results

        if isinstance(job, HarnessJob):  # one task: checked before the load unless a built-in one
            tasks, groups, settings = [job.task], [[job.task]], {job.task: job.settings}
            local = [] if job.include_defaults else [job.task]
        else:
            tasks, groups, settings, local = job.tasks, job.groups, job.settings, job.local_tasks
        log.info("evaluating %s on %s (device %s)", job.model, ", ".join(tasks), device)
        results = evaluate_model(
            model_dir,
            groups,
            settings,
            include_paths=[str(WORKFLOW_TASKS)] + job.include_paths,
            include_defaults=job.include_defaults,
            device=device,
            gpus=len(devices),
            check_tasks=local,
            threads=smk.threads,
        )
        for res in results.values():
            res["mergelab"]["model"] = job.model
        write_model_results(results, as_list(smk.output.json), as_list(smk.output.get("samples", [])))


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
