"""Snakemake job of rule `push_results`: the pushed card gets a model-index and a Holmes summary."""

import json
from pathlib import Path

from mergelab.plan.jobs import PushResultsJob
from mergelab.runtime.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        import pandas as pd

        from mergelab.analysis.harness_rows import headline
        from mergelab.hub import push_card, results_card

        job = PushResultsJob.from_params(smk.params)
        model = job.model
        harness = pd.read_csv(smk.input.harness)
        head = headline(harness[harness["model"] == model]) if not harness.empty else harness
        head = head[head["status"] == "ok"] if not head.empty else head
        rows = []
        for r in head.itertuples():
            task_rows = harness[
                (harness["model"] == model)
                & (harness["task"] == r.harness_task)
                & (harness["metric"] == r.metric)
                & (harness["filter"] == r.filter)
            ]
            rows.append(
                {
                    "task": r.harness_task,
                    "metric": r.metric,
                    "filter": r.filter,
                    "value": r.value,
                    "stderr": r.stderr,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "n_shot": task_rows["n_shot"].iloc[0] if len(task_rows) else None,
                }
            )
        comp = pd.read_csv(smk.input.competences)
        comp = comp[comp["model"] == model].to_dict("records") if not comp.empty else []
        card = (Path(smk.input.model) / "README.md").read_text(encoding="utf-8")
        pairs = pd.read_csv(smk.input.comparisons)
        pairs = pairs[pairs["model"] == model].fillna("").to_dict("records") if not pairs.empty else []
        text = results_card(card, job.repo_id.split("/", 1)[1], rows, comp, comparison_rows=pairs)
        receipt = push_card(job.repo_id, text, retries=job.retries, wait=job.retry_wait)
        log.info("card of %s updated (commit %s): %d results", job.repo_id, receipt["commit_id"], len(rows))
        with atomic_file(smk.output[0]) as fh:
            json.dump({**receipt, "results": len(rows), "holmes_competences": len(comp)}, fh, indent=2)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
