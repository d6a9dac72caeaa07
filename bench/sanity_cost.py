"""What the sanity check costs against one harness job of the same merge (issue 17).

    python bench/sanity_cost.py [--sizes demo,bench] [--tasks mergelab_categories,...] [--items N,...] [--quick]

For each model size, builds (or reuses, under bench/out/) the demo parents, then runs
through the workflow one linear merge of math and words with `sanity.activate: true`
and one harness job per task (`harness.jobs: per_task`, full tasks), and reads the
jobs' own times from Snakemake's benchmark files:

  check   benchmarks/sanity_check/<merge>.tsv
  harness benchmarks/harness_eval/<merge>/<task>.tsv   (per task)

It prints check / harness job per task (the issue's target: <= 0.10), and the same
ratio for the work alone: in one process with torch, transformers and lm-eval already
imported and warmed up on a parent, `mergelab.evaluate.sanity.check_model` on the merge against
`lm_eval.simple_evaluate` of each task on it. The difference is the start-up every
model-loading job pays (interpreter, torch, transformers, lm-eval, Snakemake's script
preamble): on the demo's 187k-parameter models both jobs are almost all start-up. The
work is what grows with the model and the task: the check is one load plus about 12
short forward passes, a task is one load plus one request per item (thousands at 7B).

--items N,... adds, per N, the task mergelab_categories_n<N>: mergelab_categories' prompt
and four choices over N items (its 16 test items repeated), a local task folder under the
benchmark's workdir: what one harness job costs at a real task's size (ARC-Easy's test
set has 2376 items, HellaSwag's validation set 10042), against the same check.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys

import yaml

from common import OUT, REPO, demo_models, env, parse_args, snakemake_cmd, timed, workdir

WORK = r"""
import sys, time
import lm_eval, torch, transformers
from lm_eval.tasks import TaskManager
from mergelab.evaluate.sanity import check_model

parent, merge, tasks, include = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
tm = TaskManager(include_path=include, include_defaults=False)


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


def sized_tasks(folder, items: list) -> list:
    """Task YAMLs mergelab_categories_n<N> in ``folder``: the 16 test items repeated to N."""
    source = (REPO / "workflow/tasks/mergelab_demo/data/categories_test.jsonl").read_text().splitlines()
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n in items:
        data = folder / f"categories_n{n}.jsonl"
        data.write_text("\n".join(source[i % len(source)] for i in range(n)) + "\n")
        task = {
            "task": f"mergelab_categories_n{n}",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "output_type": "multiple_choice",
            "test_split": "test",
            "doc_to_text": "The {{noun}} is a kind of",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{label}}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        }
        (folder / f"categories_n{n}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
        names.append(f"mergelab_categories_n{n}")
    return names


def work_seconds(parent, merge, tasks: list, include: list) -> dict:
    """Seconds of the check's and each task's own work, in one warmed-up process."""
    include = ",".join([str(REPO / "workflow" / "tasks")] + [str(p) for p in include])
    out = subprocess.run(
        [sys.executable, "-c", WORK, str(parent), str(merge), ",".join(tasks), include],
        check=True,
        env=env(),
        capture_output=True,
        text=True,
    ).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.count(" ") == 1)}


def run_size(size: str, tasks: list, items: list) -> None:
    parents = demo_models(size)
    folder = OUT / f"sanity-cost-{size}" / "tasks"
    shutil.rmtree(folder, ignore_errors=True)
    tasks = tasks + sized_tasks(folder, items)
    cfg = {
        "models": {n: {"path": str(parents / n)} for n in ("base", "math", "words")},
        "merges": [{"name": "mw", "models": ["math", "words"], "methods": ["linear"], "dtype": "float32"}],
        "evaluation": {"models": ["mw"]},
        "harness": {"tasks": tasks, "jobs": "per_task", "settings": {"batch_size": 16}}
        | ({"include_path": ["tasks"]} if items else {}),
        "holmes": {"activate": False},
        "sanity": {"activate": True},
    }
    wd, path = workdir(f"sanity-cost-{size}", cfg)
    for d in ("results", "logs", "benchmarks", ".snakemake"):  # the tasks folder stays
        shutil.rmtree(wd / d, ignore_errors=True)
    timed(snakemake_cmd(wd, path, "--cores", "1", "evaluations"))
    merges = sorted(p.name for p in (wd / "results" / "models").iterdir())
    merge = merges[0]
    check = seconds(wd / "benchmarks" / "sanity_check" / f"{merge}.tsv")
    work = work_seconds(parents / "math", wd / "results" / "models" / merge, tasks, [folder] if items else [])
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
    ap.add_argument("--items", default="", help="also mergelab_categories over N items, per N (comma list)")
    args = parse_args(ap, sizes="tiny", tasks="", items="16")
    items = [int(n) for n in args.items.split(",") if n]
    for size in args.sizes.split(","):
        run_size(size, [t for t in args.tasks.split(",") if t], items)


if __name__ == "__main__":
    main()
