"""What the sanity check costs against one harness job of the same merge (issue 17).

    python bench/sanity_cost.py [--sizes demo,bench] [--tasks mergelab_categories,...]

For each model size, builds (or reuses, under bench/out/) the demo parents, then runs
through the workflow one linear merge of math and words with `sanity.activate: true`
and one harness job per task (`harness.jobs: per_task`, full tasks), and reads the
jobs' own times from Snakemake's benchmark files:

  check   benchmarks/sanity_check/<merge>.tsv
  harness benchmarks/harness_eval/<merge>/<task>.tsv   (per task)

It prints check / harness job per task (the issue's target: <= 0.10), and the same
ratio for the work alone: in one process with torch, transformers and lm-eval already
imported and warmed up on a parent, `mergelab.sanity.check_model` on the merge against
`lm_eval.simple_evaluate` of each task on it. The difference is the start-up every
model-loading job pays (interpreter, torch, transformers, lm-eval, Snakemake's script
preamble): on the demo's 187k-parameter models both jobs are almost all start-up. The
work is what grows with the model and the task: the check is one load plus about 12
short forward passes, a task is one load plus one request per item (thousands at 7B).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys

from common import REPO, demo_models, env, snakemake_cmd, timed, workdir

WORK = r"""
import sys, time
import lm_eval, torch, transformers
from lm_eval.tasks import TaskManager
from mergelab.sanity import check_model

parent, merge, tasks, include = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
tm = TaskManager(include_path=[include], include_defaults=False)


def evaluate(path, task):
    args = f"pretrained={path},dtype=auto"
    lm_eval.simple_evaluate(model="hf", model_args=args, tasks=[task], task_manager=tm, batch_size=16, device="cpu")


check_model(parent)  # warm-up: lazy imports, first kernels
evaluate(parent, tasks[0])
t0 = time.perf_counter()
check_model(merge)
print("check", time.perf_counter() - t0)
for task in tasks:
    t0 = time.perf_counter()
    evaluate(merge, task)
    print(task, time.perf_counter() - t0)
"""
TASKS = "mergelab_categories,mergelab_arithmetic,mergelab_text_ppl"


def seconds(path) -> float:
    with open(path) as fh:
        return float(next(csv.DictReader(fh, delimiter="\t"))["s"])


def work_seconds(parent, merge, tasks: list) -> dict:
    """Seconds of the check's and each task's own work, in one warmed-up process."""
    out = subprocess.run(
        [sys.executable, "-c", WORK, str(parent), str(merge), ",".join(tasks), str(REPO / "workflow" / "tasks")],
        check=True,
        env=env(),
        capture_output=True,
        text=True,
    ).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.count(" ") == 1)}


def run_size(size: str, tasks: list) -> None:
    parents = demo_models(size)
    cfg = {
        "models": {n: {"path": str(parents / n)} for n in ("base", "math", "words")},
        "merges": [{"name": "mw", "models": ["math", "words"], "methods": ["linear"], "dtype": "float32"}],
        "evaluation": {"models": ["mw"]},
        "harness": {"tasks": tasks, "jobs": "per_task", "settings": {"batch_size": 16}},
        "holmes": {"activate": False},
        "sanity": {"activate": True},
    }
    wd, path = workdir(f"sanity-cost-{size}", cfg)
    for d in ("results", "logs", "benchmarks", ".snakemake"):
        shutil.rmtree(wd / d, ignore_errors=True)
    timed(snakemake_cmd(wd, path, "--cores", "1", "evaluations"))
    merges = sorted(p.name for p in (wd / "results" / "models").iterdir())
    merge = merges[0]
    check = seconds(wd / "benchmarks" / "sanity_check" / f"{merge}.tsv")
    work = work_seconds(parents / "math", wd / "results" / "models" / merge, tasks)
    print(f"size {size} ({parents}), merge {merge}")
    print(f"  sanity check: job {check:7.2f} s, work {work['check']:6.2f} s")
    for task in tasks:
        job = seconds(wd / "benchmarks" / "harness_eval" / merge / f"{task}.tsv")
        print(
            f"  {task:<22} harness job {job:7.2f} s, work {work[task]:6.2f} s   check/harness: "
            f"jobs {check / job:.3f}, work {work['check'] / work[task]:.3f}   (target <= 0.10)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="demo,bench")
    ap.add_argument("--tasks", default=TASKS)
    args = ap.parse_args()
    for size in args.sizes.split(","):
        run_size(size, args.tasks.split(","))


if __name__ == "__main__":
    main()
