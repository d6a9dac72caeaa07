"""Every path under results/, defined once, and how paths travel from the DAG to a job.

Patterns use Snakemake's wildcard syntax ({model}, {task}); rules declare them
as outputs and the plan fills them in with ``.format``. All are relative to the
working directory (where snakemake runs), as Snakemake's own paths are.

What decides a rerun must hold no absolute path, so that a finished campaign
moved to another folder reruns nothing. The plan knows paths as absolute ones
(they are checked while the DAG is built); ``portable`` writes those under the
working directory as ``{workdir}/...`` for the job's params, and ``localize``
turns them back into absolute paths inside the job (whose working directory is
the campaign's).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# the workflow's own lm-eval tasks, found from any working directory
WORKFLOW_TASKS = Path(__file__).resolve().parents[3] / "workflow" / "tasks"

# ---- models
DEMO_MODEL = "results/demo/{name}"  # trained by demo_models
MERGED_MODEL = "results/models/{model}"  # a merge: weights, tokenizer, mergekit config, card
MERGES_TABLE = "results/merges.tsv"
MERGE_RECORD = "results/records/{model}"  # a merge whose weights are deleted: card, mergekit config, weights.json
MERGE_RECORD_WEIGHTS = "results/records/{model}/weights.json"  # its files: bytes and sha256

# ---- hub
FETCH_RECEIPT = "results/hub/parents/{model}.json"  # a hub parent's commit and local snapshot
PUSH_RECEIPT = "results/hub/{model}.json"
PUSH_RESULTS_RECEIPT = "results/hub/results/{model}.json"

# ---- evaluations
CHECK = "results/checks/{model}.json"  # the sanity check of a merge (and of its parents, its reference)
HARNESS_JSON = "results/harness/{model}/{task}.json"
HARNESS_SAMPLES = "results/harness/{model}/{task}.samples.jsonl"
HARNESS_DATA = "results/harness/data/{task}.json"  # receipt of a task's Hub datasets (harness_data)
# one row per item x per-item metric (mergelab.evaluate.items.ITEM_COLUMNS): every harness job writes it
HARNESS_ITEMS = "results/harness/{model}/{task}.items.parquet"
HOLMES_MANIFEST = "results/holmes/datasets-{version}.tsv"
HOLMES_SCORES = "results/holmes/{model}/scores.csv"

# ---- tables, figures, report
# merge search (mergelab.plan.search): one folder per search
SEARCH_PROPOSALS = "results/search/{search}/gen{generation}/proposals.json"  # a generation's trials
SEARCH_GEN_JOURNAL = "results/search/{search}/gen{generation}/journal.log"  # Optuna's journal, after asking them
SEARCH_BEST_MODEL = "results/search/{search}/best/{model}"  # a best trial, merged again for its full evaluation
SEARCH_DEV = "results/search/{search}/dev/{model}.json"  # a trial's dev evaluation: task -> lm-eval results
SEARCH_PROBE = "results/search/{search}/dev/{model}.holmes.json"  # its dev probing: competence -> mean F1
SEARCH_TRIALS = "results/search/{search}/trials.csv"
SEARCH_BEST = "results/search/{search}/best.yaml"
SEARCH_JOURNAL = "results/search/{search}/journal.log"  # the whole study (optuna.load_study reads it)
SEARCH_FIGURE = "results/plots/search/{search}"  # .png, .svg

TABLES = {
    "harness": "results/tables/harness.csv",
    "harness_parquet": "results/tables/harness.parquet",
    "holmes": "results/tables/holmes.csv",
    "competences": "results/tables/holmes_competences.csv",
    "comparisons": "results/tables/merge_comparisons.csv",
    "normalised": "results/tables/normalised_scores.csv",
    "leaderboard": "results/tables/leaderboard.md",
    "leaderboard_csv": "results/tables/leaderboard.csv",  # its table, on the report's first page
    "provenance": "results/tables/provenance.json",
}
PLOTS = "results/plots"  # the figures' stems live below it (mergelab.plan.figures.FIGURES)
REPORT = "results/report.html"
# After a failed run: the tables and figures from the results that exist, where no rule
# writes, so that Snakemake never takes them for its own outputs.
PARTIAL = "results/partial"


def partial(path: str) -> str:
    """Where the onerror build puts the counterpart of a results/ path: results/partial/..."""
    assert path.startswith("results/"), path
    return f"{PARTIAL}/{path[len('results/') :]}"


WORKDIR = "{workdir}"  # stands for the working directory in a job's params


def portable(value: Any, workdir: os.PathLike) -> Any:
    """``value`` with every absolute path under ``workdir`` written as ``{workdir}/...``."""
    root = os.fspath(workdir).rstrip("/")
    if isinstance(value, str):
        if value == root:
            return WORKDIR
        if value.startswith(root + "/"):
            return WORKDIR + value[len(root) :]
        return value
    if isinstance(value, dict):
        return {k: portable(v, workdir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, workdir) for v in value]
    return value


def localize(value: Any, workdir: os.PathLike | None = None) -> Any:
    """The inverse of ``portable``, against ``workdir`` (default: the current directory)."""
    root = os.fspath(workdir or os.getcwd()).rstrip("/")
    if isinstance(value, str):
        if value == WORKDIR or value.startswith(WORKDIR + "/"):
            return root + value[len(WORKDIR) :]
        return value
    if isinstance(value, dict):
        return {k: localize(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [localize(v, root) for v in value]
    return value


def relative(path: str, workdir: os.PathLike) -> str:
    """A Snakemake input or output path: relative when under ``workdir``, else as it is."""
    root = os.fspath(workdir).rstrip("/")
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


# ---- wildcard constraints

# results/harness/data/ holds harness_data's receipts, never a model's results
HARNESS_MODEL = r"(?!data$)[^/]+"


def one_of(names) -> str:
    """A wildcard constraint matching exactly these names (never-matching when there are none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"
