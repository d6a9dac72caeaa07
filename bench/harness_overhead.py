"""One harness job through the workflow vs the bare `lm_eval` CLI, same model and local task.

    python bench/harness_overhead.py [--repeats 3] [--size bench] [--task mergelab_categories] [--no-warmup]
                                     [--quick]

Times, alternating, N runs of
  bare:     lm_eval --model hf --model_args pretrained=M,dtype=auto --tasks T
            --include_path workflow/tasks --device cpu --batch_size 16 --output_path DIR
  workflow: snakemake --cores 2 results/harness/M/T.json --forcerun harness_eval
and prints the medians and their ratio (target <= 1.0). The workflow job skips
lm-eval's ~12 s indexing of its built-in tasks when only local tasks are asked for.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys

from common import REPO, demo_models, median, parse_args, snakemake_cmd, timed, workdir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="bench")
    ap.add_argument("--task", default="mergelab_categories")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="no first run of each")
    args = parse_args(ap, size="tiny", repeats=1, warmup=False)

    models = demo_models(args.size)
    wd, cfg_path = workdir(
        "harness-overhead",
        {
            "models": {"m": {"path": str(models / "base")}},
            "harness": {"tasks": [args.task], "jobs": "per_task", "settings": {"batch_size": 16}},
        },
    )
    target = f"results/harness/m/{args.task}.json"
    bare_cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={models / 'base'},dtype=auto",
        "--tasks",
        args.task,
        "--include_path",
        str(REPO / "workflow" / "tasks"),
        "--device",
        "cpu",
        "--batch_size",
        "16",
        "--output_path",
        str(wd / "bare-out"),
    ]
    flow_cmd = snakemake_cmd(wd, cfg_path, "--cores", "2", target, "--forcerun", "harness_eval")
    if args.warmup:  # page cache, compiled bytecode
        timed(bare_cmd)
        timed(flow_cmd)
    bare, flow, job = [], [], []
    for _ in range(args.repeats):
        shutil.rmtree(wd / "bare-out", ignore_errors=True)
        bare.append(timed(bare_cmd))
        flow.append(timed(flow_cmd))
        with open(wd / "benchmarks" / "harness_eval" / "m" / f"{args.task}.tsv") as fh:
            job.append(float(next(csv.DictReader(fh, delimiter="\t"))["s"]))
    ours = json.loads((wd / target).read_text())["results"][args.task]
    theirs = json.loads(next((wd / "bare-out").rglob("results_*.json")).read_text())["results"][args.task]
    same = all(ours[k] == theirs[k] for k in theirs if isinstance(theirs[k], float) and "stderr" not in k)
    print(f"model: {args.size} ({models / 'base'}), task {args.task}, CPU, batch size 16, {args.repeats} runs each")
    print(f"bare lm_eval CLI    median {median(bare):6.2f} s   runs {', '.join(f'{x:.2f}' for x in bare)}")
    print(f"workflow snakemake  median {median(flow):6.2f} s   runs {', '.join(f'{x:.2f}' for x in flow)}")
    print(f"  of which the job  median {median(job):6.2f} s")
    print(
        f"ratio workflow/bare: {median(flow) / median(bare):.3f}   (job/bare: {median(job) / median(bare):.3f}; "
        f"target <= 1.0); same metric values: {same}"
    )


if __name__ == "__main__":
    main()
