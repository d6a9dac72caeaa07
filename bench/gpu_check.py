"""The GPU paths, proven on a machine with CUDA: one prepared call.

    python bench/gpu_check.py [--gpus N] [--keep]        # on a GPU machine (N: all its GPUs)
    python bench/gpu_check.py --cpu                      # anywhere: the same checks on the CPU
    python bench/gpu_check.py --quick                    # --cpu --extended --no-holmes (the tests')

Builds three Llama-shaped models (random, ~1B parameters in bfloat16; --cpu: the
tests' tiny ones), runs a small campaign through the workflow (two merges, one
harness task, the embedded Holmes set) with `snakemake --cores C --resources gpu=N`,
then checks from the job logs and benchmark files:

- every merge ran on cuda;
- every evaluation job saw only its own device: pinned to one, and torch saw one;
- no two jobs that ran at once shared a device (and some did run at once, N >= 2);
- the pipeline's merge time against a bare `mergekit-yaml --cuda` on the same config.

--extended adds the rest of the cuda paths one card can prove: a mixture-of-experts merge
(mergekit-moe, routers from the base's hidden states on cuda), the sanity check of every
model on the device (every one healthy), and harness jobs per model (two tasks, one load);
--no-holmes leaves Holmes out (to fit a short lease; its cuda path is in the plain run).

Prints one line per check and the timings; exits 1 if a check fails. With --cpu,
MERGELAB_GPUS fakes N devices (the pinning is the same code; torch then sees none),
the cuda checks are reported as skipped, and mergekit-yaml runs without --cuda: the
script cannot rot where no GPU is. Work goes to bench/out/gpu-check/ (removed unless
--keep).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from common import OUT, REPO, env, parse_args

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def build_models(root: Path, cpu: bool) -> None:
    """base, a, b: a random base and two perturbed copies (bfloat16 on a GPU machine)."""
    import torch

    from mergelab.embedded import demo

    if cpu:
        demo.build_demo_models({"base": root / "base", "math": root / "a", "words": root / "b"}, seed=0, size="tiny")
        return
    tokenizer = demo.train_tokenizer(demo.tokenizer_corpus(0))
    base = demo.init_model(demo.llama_config(tokenizer, "1b"), 0)
    for i, name in enumerate(("base", "a", "b")):
        model = base if name == "base" else demo.perturbed(base, seed=1000 + i)
        demo.save(model.to(torch.bfloat16), tokenizer, root / name)
        if model is not base:
            del model


MOE_PROMPTS = {"a": {"positive": ["two plus two is"]}, "b": {"positive": ["the cat sat on the"]}}


def campaign(root: Path, extended: bool = False, holmes: bool = True) -> dict:
    """Two merges (linear, ties), one task, Holmes; extended: ties and a MoE merge, the sanity
    check, two tasks in one harness job per model."""
    cfg = {
        "models": {n: {"path": str(root / n)} for n in ("base", "a", "b")},
        "merges": [
            {"name": "ab", "models": ["a", "b"], "base": "base", "methods": ["linear", "ties"], "dtype": "bfloat16"}
        ],
        "harness": {"tasks": ["mergelab_categories"], "settings": {"batch_size": 16, "bootstrap_iters": 0}},
        "holmes": {"activate": holmes, "version": "demo", "seeds": [0]},
    }
    if extended:
        cfg["merges"][0]["methods"] = ["ties", "moe"]
        cfg["merges"][0]["moe"] = {"gate_mode": "hidden", "prompts": MOE_PROMPTS}
        cfg["harness"]["tasks"] = ["mergelab_categories", "mergelab_arithmetic"]
        cfg["harness"]["jobs"] = "per_model"
        cfg["sanity"] = {"activate": True, "on_fail": "stop"}
    return cfg


def job_logs(wd: Path, rules) -> list:
    """(rule, log path, start, end, pinned devices, CUDA devices torch saw or None, text) per job."""
    out = []
    for rule in rules:
        for log in sorted((wd / "logs" / rule).rglob("*.log")):
            text = log.read_text(errors="replace")
            stamps = [
                datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in map(STAMP.match, text.splitlines()) if m
            ]
            pinned = re.findall(r"pinned to GPU\(s\) (\S+)", text)
            seen = re.findall(r"torch sees (\d+) CUDA device", text)
            out.append(
                (
                    rule,
                    log,
                    stamps[0] if stamps else None,
                    stamps[-1] if stamps else None,
                    set(pinned[-1].split(",")) if pinned else set(),
                    int(seen[-1]) if seen else None,
                    text,
                )
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", action="store_true", help="no GPU: fake devices, tiny models")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all; --cpu: 2)")
    ap.add_argument("--cores", type=int, default=None, help="snakemake --cores (default: 4 per GPU; --cpu: 2)")
    ap.add_argument("--keep", action="store_true", help="keep bench/out/gpu-check/")
    ap.add_argument("--extended", action="store_true", help="also a MoE merge, sanity checks, per_model harness")
    ap.add_argument("--no-holmes", dest="holmes", action="store_false", help="leave Holmes out")
    args = parse_args(ap, doc="--cpu --extended --no-holmes", cpu=True, extended=True, holmes=False)

    run_env = env()
    if args.cpu:
        gpus = args.gpus or 2
        run_env["MERGELAB_GPUS"] = ",".join(str(i) for i in range(gpus))
    else:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run with --cpu for the CPU check", file=sys.stderr)
            return 2
        gpus = args.gpus or torch.cuda.device_count()
    cores = args.cores or (2 if args.cpu else 4 * gpus)
    wd = OUT / "gpu-check"
    shutil.rmtree(wd, ignore_errors=True)
    (wd / "models").mkdir(parents=True)
    t0 = time.perf_counter()
    build_models(wd / "models", args.cpu)
    print(f"models built in {time.perf_counter() - t0:.0f} s")
    cfg_path = wd / "experiment.yaml"
    cfg_path.write_text(yaml.safe_dump(campaign(wd / "models", args.extended, args.holmes)))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd)]
    cmd += ["--cores", str(cores), "--resources", f"gpu={gpus}", "--configfile", str(cfg_path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        print("FAIL  the campaign did not run through")
        return 1
    print(f"campaign: {wall:.0f} s wall with --cores {cores} --resources gpu={gpus}")

    ok = True

    def check(name: str, passed, detail: str = "") -> None:
        nonlocal ok
        if passed is None:
            print(f"skip  {name}{': ' + detail if detail else ''}")
            return
        ok &= bool(passed)
        print(f"{'ok  ' if passed else 'FAIL'}  {name}{': ' + detail if detail else ''}")

    jobs = job_logs(wd, ("merge", "harness_eval", "harness_eval_model", "holmes_eval", "sanity_check"))
    merges = [j for j in jobs if j[0] == "merge"]
    evals = [j for j in jobs if j[0] != "merge"]
    on_cuda = [bool(re.search(r"(merging|building MoE) \S+ .*on cuda", j[6])) for j in merges]
    check(
        "every merge ran on cuda",
        None if args.cpu else (len(merges) == 2 and all(on_cuda)),
        "--cpu" if args.cpu else f"{sum(on_cuda)} of {len(merges)}",
    )
    own = [len(j[4]) == 1 and (args.cpu or j[5] == 1) for j in evals]
    check(
        "every evaluation job saw only its own device",
        bool(evals) and all(own),
        f"{sum(own)} of {len(evals)} jobs pinned to one device"
        + ("" if args.cpu else ", torch saw one")
        + ("" if len(evals) else ": no evaluation job found"),
    )
    overlapping, shared = 0, []
    for i, a in enumerate(jobs):
        for b in jobs[i + 1 :]:
            if a[2] and b[2] and a[2] < b[3] and b[2] < a[3]:
                overlapping += 1
                if a[4] & b[4]:
                    shared.append(f"{a[1].relative_to(wd)} & {b[1].relative_to(wd)} on {sorted(a[4] & b[4])}")
    check(
        "no two jobs at once on the same device",
        not shared and (overlapping > 0 or gpus < 2),
        f"{overlapping} pairs ran at once" + (f"; shared: {shared[:3]}" if shared else ""),
    )

    if args.extended:
        moe = [j for j in merges if "building MoE" in j[6]]
        check("the MoE merge ran on cuda", None if args.cpu else (len(moe) == 1 and "on cuda" in moe[0][6]))
        checks = {f.stem: json.loads(f.read_text()) for f in (wd / "results" / "checks").glob("*.json")}
        healthy = sorted(m for m, c in checks.items() if c.get("status") == "ok")
        on_device = sum(1 for j in evals if j[0] == "sanity_check" and (args.cpu or j[5] == 1))
        check(
            "every model's sanity check passed, on its device",
            len(checks) == 5 and len(healthy) == 5 and on_device == 5,
            f"{len(healthy)} of {len(checks)} ok, {on_device} on one device",
        )
        results = sorted((wd / "results" / "harness").glob("*/mergelab_*.json"))
        model_jobs = [j for j in evals if j[0] == "harness_eval_model"]
        check(
            "one harness job per model wrote each task's result",
            len(results) == 10 and len(model_jobs) == 5,
            f"{len(results)} results from {len(model_jobs)} jobs",
        )

    # the pipeline's merge against bare mergekit-yaml on the same config
    mid = "ab_ties_d0.5_w0.5"
    with open(wd / "benchmarks" / "merge" / f"{mid}.tsv") as fh:
        job_s = float(list(csv.DictReader(fh, delimiter="\t"))[-1]["s"])
    # mergekit-yaml's entry point, run as a module: a --target install has no console script
    bare_cmd = [sys.executable, "-m", "mergekit.scripts.run_yaml"]
    bare_cmd += [str(wd / "results" / "models" / mid / "mergekit_config.yml")]
    bare_cmd += [str(wd / "bare"), "--no-write-model-card"] + ([] if args.cpu else ["--cuda"])
    bare_env = dict(run_env, CUDA_VISIBLE_DEVICES="" if args.cpu else "0")
    t0 = time.perf_counter()
    bare = subprocess.run(bare_cmd, env=bare_env, capture_output=True, text=True)
    bare_s = time.perf_counter() - t0
    check("bare mergekit-yaml on the same config", bare.returncode == 0, bare.stderr[-300:] if bare.returncode else "")
    print(
        f"merge {mid}: workflow job {job_s:.1f} s, bare mergekit-yaml{' --cuda' if not args.cpu else ''} "
        f"{bare_s:.1f} s, ratio {job_s / bare_s:.2f}"
    )
    if not args.keep:
        shutil.rmtree(wd, ignore_errors=True)
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
