"""Merge job through the workflow vs a bare `mergekit-yaml` call on the same config and models.

    python bench/merge_overhead.py [--repeats 3] [--size bench|bench-large] [--no-warmup] [--quick]

Builds three ~56M-parameter Llama models (demo builder, size "bench") once under
bench/out/, then times, alternating, N runs of
  bare:     mergekit-yaml CONFIG OUT --random-seed 0
  workflow: snakemake --cores 2 results/models/ID --forcerun merge --set-threads merge=2
(both use two threads: bare mergekit takes all cores, a workflow job on a CPU run
one unless told)
and prints the medians and their ratio (target <= 1.05). The workflow's start-up
(Snakemake itself ~1.8 s, the DAG ~0.6 s) is fixed, so the ratio falls with the
model: --size bench-large (~200M parameters) shows it amortised. The workflow figure
is the whole snakemake invocation (DAG build, job start, pinning, merge);
"job" is the job's own wall time from its benchmark file.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import sys
from pathlib import Path

import yaml

from common import demo_models, median, parse_args, snakemake_cmd, timed, workdir


def count_parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            total += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys())
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="bench")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="no first run of each")
    args = parse_args(ap, size="tiny", repeats=1, warmup=False)

    from mergelab.embedded.demo import SIZES
    from mergelab.plan.experiment import load_experiment

    models = demo_models(args.size)
    wd, cfg_path = workdir(
        "merge-overhead",
        {
            "models": {n: {"path": str(models / n)} for n in ("base", "math", "words")},
            "merges": [
                {"name": "ab", "models": ["math", "words"], "base": "base", "methods": ["ties"], "dtype": "float32"}
            ],
        },
    )
    cfg = yaml.safe_load(cfg_path.read_text())
    spec = next(iter(load_experiment(cfg, str(cfg_path), workdir=wd).merges.values()))
    mk_path = wd / "mergekit.yml"
    mk_path.write_text(yaml.safe_dump(spec.mergekit_config))
    mergekit_yaml = shutil.which("mergekit-yaml", path=str(Path(sys.executable).parent))

    n_params = count_parameters(models / "base")

    bare, flow, job = [], [], []
    flow_cmd = snakemake_cmd(
        wd, cfg_path, "--cores", "2", f"results/models/{spec.id}", "--forcerun", "merge", "--set-threads", "merge=2"
    )
    if args.warmup:  # one run of each, so both read the models from the page cache
        timed([mergekit_yaml, str(mk_path), str(wd / "bare-out"), "--random-seed", "0"])
        timed(flow_cmd)
    for _ in range(args.repeats):
        shutil.rmtree(wd / "bare-out", ignore_errors=True)
        bare.append(timed([mergekit_yaml, str(mk_path), str(wd / "bare-out"), "--random-seed", "0"]))
        flow.append(timed(flow_cmd))
        with open(wd / "benchmarks" / "merge" / f"{spec.id}.tsv") as fh:
            job.append(float(next(csv.DictReader(fh, delimiter="\t"))["s"]))
    print(
        f"model: {args.size} ({n_params / 1e6:.1f}M parameters, {SIZES[args.size]['num_hidden_layers']} layers), "
        f"method ties over 3 models, float32, CPU, {args.repeats} runs each"
    )
    print(f"bare mergekit-yaml  median {median(bare):6.2f} s   runs {', '.join(f'{x:.2f}' for x in bare)}")
    print(f"workflow snakemake  median {median(flow):6.2f} s   runs {', '.join(f'{x:.2f}' for x in flow)}")
    print(f"  of which the job  median {median(job):6.2f} s")
    print(
        f"ratio workflow/bare: {median(flow) / median(bare):.3f}   (job/bare: {median(job) / median(bare):.3f}; "
        f"target <= 1.05)"
    )


if __name__ == "__main__":
    main()
