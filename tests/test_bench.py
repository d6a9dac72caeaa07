"""Benchmarks that cannot rot: every script under bench/ runs in its quick mode (`--quick`: seconds,
tiny sizes) and reaches its report, every key line of it printed with finite numbers.

The scripts are found in bench/ (a file with a `__main__` guard): one without --quick, its
report's lines in REPORTS or its place in the lists of how it is run fails the fast tier. The runs
work in a tmp folder (MERGELAB_BENCH_OUT) shared by the session, so that the tiny models are built
once. The quick numbers mean nothing; the full runs are docs/development.md#benchmarks.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from conftest import REPO, base_env

BENCH = REPO / "bench"
# {n} in a report line: a number, which must be finite (nan and inf match, and fail)
NUMBER = r"([-+]?(?:\d+(?:\.\d+)?|nan|inf))"

# Per script, the lines its quick report must print (regular expressions; the last is the summary).
REPORTS = {
    "default_run.py": [
        r"^run 1: {n} s \(report {n} s\); demo_models: none \(--quick",
        r"^  job seconds per rule \(summed over its jobs\): harness_eval_model {n}, merge {n}$",
        r"^default run on 2 cores: median {n} s \+ report {n} s; target 300 s: ratio {n}$",
    ],
    "dryrun_scaling.py": [
        r"^merges in the config: 18$",
        r"^snakemake -n: median {n} s   runs {n}   \(target <= 5 s\)$",
        r"^with 3 harness tasks \(18 merges \+ 63 evaluations\): snakemake -n median {n} s$",
    ],
    # --quick: --cpu --extended --no-holmes, the GPU check's extended form as last run on a GPU, with fake
    # devices and tiny models (a MoE merge, every model's sanity check, per_model harness jobs)
    "gpu_check.py": [
        r"^models built in {n} s$",
        r"^campaign: {n} s wall with --cores 2 --resources gpu=2$",
        r"^skip  every merge ran on cuda: --cpu$",
        r"^ok    every evaluation job saw only its own device: 10 of 10 jobs pinned to one device$",
        r"^ok    no two jobs at once on the same device: {n} pairs ran at once$",
        r"^ok    every model's sanity check passed, on its device: 5 of 5 ok, 5 on one device$",
        r"^ok    one harness job per model wrote each task's result: 10 results from 5 jobs$",
        r"^ok    bare mergekit-yaml on the same config$",
        r"^merge ab_ties_d0\.5_w0\.5: workflow job {n} s, bare mergekit-yaml {n} s, ratio {n}$",
        r"^all checks passed$",
    ],
    "harness_overhead.py": [
        r"^model: tiny \(.+\), task mergelab_categories, CPU, batch size 16, 1 runs each$",
        r"^bare lm_eval CLI    median +{n} s   runs {n}$",
        r"^workflow snakemake  median +{n} s   runs {n}$",
        r"^  of which the job  median +{n} s$",
        r"^ratio workflow/bare: {n}   \(job/bare: {n}; target <= 1\.0\); same metric values: True$",
    ],
    "harness_per_model.py": [
        r"^per_task: wall {n} s; harness 3 jobs, {n} job seconds \(harness_eval {n}\)$",
        r"^per_model: wall {n} s; harness 1 jobs, {n} job seconds \(harness_eval_model {n}\)$",
        r"^harness job seconds: per_model {n} s / per_task {n} s = {n} \(target <= 0\.5: (?:met|missed)\)$",
        r"^wall: per_model {n} s / per_task {n} s = {n} \(target <= 0\.8: (?:met|missed)\)$",
    ],
    "holmes_probing.py": [
        r"^probing: 2 datasets x 5 seeds, width 16, device cpu$",
        r"^  plain per-seed loop +{n} s$",
        r"^  vectorised +{n} s$",
        r"^  speed ratio {n}x \(target >= 20x\); largest \|mean score difference\| {n}, mean {n}$",
        r"^encoding: {n} unique texts, tiny model \({n}M\), cpu: {n} s = {n} sentences/s$",
    ],
    "keep_merges.py": [
        r"^2 merges \(size tiny\), --resources gpu=2, keep_merges: none; {n} s$",
        r"^peak merges held at once: {n} of 2 \(target <= gpu \+ 2 = 4: (?:met|missed)\)$",
        r"^peak bytes under results/models/: {n} / all merges {n} = {n}$",
        r"^left at the end: 0 merges, 0 bytes$",
    ],
    "merge_overhead.py": [
        r"^model: tiny \({n}M parameters, 2 layers\), method ties over 3 models, float32, CPU, 1 runs each$",
        r"^bare mergekit-yaml  median +{n} s   runs {n}$",
        r"^workflow snakemake  median +{n} s   runs {n}$",
        r"^  of which the job  median +{n} s$",
        r"^ratio workflow/bare: {n}   \(job/bare: {n}; target <= 1\.05\)$",
    ],
    "sanity_cost.py": [
        r"^size tiny \(.+\), merge mw_linear_w1$",
        r"^  sanity check: job +{n} s, work +{n} s$",
        r"^  mergelab_categories_n16 +harness job +{n} s, work +{n} s   check/harness: jobs {n}, work {n}   \(target",
    ],
    "search.py": [
        r"^search \(tpe, 2 trials, 2 per generation\): best {n}$",
        r"^grid of 2 points: best {n} \(grid_\S+\)$",
        r"^default recipe \(1 merges\): best {n} \(default_linear\S*\)$",
        r"^search - grid: {n}; search - default: {n}$",
        r"^trials reaching the grid's best: {n} of 2$",
        r"^generation 0: (?:{n} s|< 1 s) from its checkpoint to its first merge \(target 5 s\)$",
        r"^re-planning per generation: at most (?:{n} s|< 1 s); ratio to target <? ?{n}$",
        r"^whole campaign: {n} s on 2 cores$",
    ],
    "slurm_overhead.py": [
        r"^local SLURM: 1 node, {n} CPUs, 4 fake GPUs; --slurm-init-seconds-before-status-checks 2$",
        r"^embedded default, local +{n} s$",
        r"^embedded default, SLURM +{n} s   ratio SLURM/local {n}   \({n} SLURM jobs; submission to start median "
        r"{n} s, max {n} s",
        r"^one harness job \(harness_eval_model: math-words_linear_w1, its 3 tasks\), median of 1:$",
        r"^  local: wall +{n} s = {n} s to the script \+ script {n} s \+ {n} s after$",
        r"^  SLURM: wall +{n} s = {n} s to sbatch \+ {n} s submission to start \+ {n} s start to the script \+ "
        r"script {n} s \+ {n} s until snakemake saw it end$",
        r"^  overhead per job through the profile: {n} s \(ratio {n}\)$",
    ],
    "stats_cost.py": [
        r"^15 model intervals: {n} s; 18 comparisons: {n} s$",
        r"^\(200 resamples; tests: .+\)$",
    ],
}


def bench_scripts() -> list:
    """The scripts under bench/ (what `python bench/NAME.py` runs), not their helper module."""
    return sorted(p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_every_bench_script_has_a_quick_mode_and_a_report_check():
    """Each script found takes --quick (bench/common.py, parse_args), has its report's lines listed
    here, and is run by the one of the tests below that its use of Snakemake and SLURM asks for."""
    found = bench_scripts()
    assert "common.py" not in found and {"merge_overhead.py", "gpu_check.py", "slurm_overhead.py"} <= set(found)
    assert sorted(REPORTS) == found
    assert [s for s in found if "parse_args(ap" not in (BENCH / s).read_text()] == []
    starts, slurm = params("test_quick_mode_with_snakemake"), params("test_quick_mode_on_slurm")
    other = params("test_quick_mode_without_snakemake")
    assert sorted(starts + slurm + other) == found
    assert sorted(s for s in found if "snakemake" in (BENCH / s).read_text()) == sorted(starts + slurm)
    assert slurm == ["slurm_overhead.py"]


def params(test: str) -> list:
    """The scripts the quick-mode test named is parametrized over (read from its mark: it is not run)."""
    return next(m.args[1] for m in globals()[test].pytestmark if m.name == "parametrize")


def report_problems(script: str, out: str) -> list:
    """What is wrong with a quick run's printed report: each of REPORTS[script] must match a line,
    and every number it names must be finite."""
    problems = []
    for line in REPORTS[script]:
        m = re.search(line.replace("{n}", NUMBER), out, re.M)
        if not m:
            problems.append(f"no line matches {line!r}")
            continue
        bad = [g for g in m.groups() if g is not None and not math.isfinite(float(g))]
        if bad:
            problems.append(f"{m.group(0)!r}: not finite: {bad}")
    return problems


def test_the_report_check_catches_a_missing_line_and_a_nan():
    good = "15 model intervals: 0.11 s; 18 comparisons: 0.13 s\n(200 resamples; tests: exact McNemar)\n"
    assert report_problems("stats_cost.py", good) == []
    assert report_problems("stats_cost.py", good.replace("0.13", "nan"))[0].endswith("not finite: ['nan']")
    assert report_problems("stats_cost.py", good.splitlines()[0])[0].startswith("no line matches")


@pytest.fixture(scope="session")
def bench_out(tmp_path_factory):
    """MERGELAB_BENCH_OUT for every quick run: what a script builds once (the tiny models) is shared."""
    return tmp_path_factory.mktemp("bench-out")


def quick(script: str, out, tmp_path) -> tuple:
    """The command and environment of bench/<script> --quick, working under ``out``."""
    env = base_env(tmp_path)
    env["MERGELAB_BENCH_OUT"] = str(out)
    return [sys.executable, str(BENCH / script), "--quick"], env


def check_report(script: str, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    problems = report_problems(script, proc.stdout)
    assert not problems, "\n".join(problems) + "\n--- its output:\n" + proc.stdout


@pytest.mark.workflow
@pytest.mark.parametrize(  # literal lists: tests/test_tiers.py reads what a test runs from its source
    "script",
    [
        "default_run.py",
        "dryrun_scaling.py",
        "gpu_check.py",
        "harness_overhead.py",
        "harness_per_model.py",
        "keep_merges.py",
        "merge_overhead.py",
        "sanity_cost.py",
        "search.py",
    ],
)
def test_quick_mode_with_snakemake(script, bench_out, tmp_path):
    cmd, env = quick(script, bench_out, tmp_path)
    check_report(script, subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600))


@pytest.mark.slow  # holmes_probing ~6 s on 2 cores (40 s while busy), stats_cost ~1 s
@pytest.mark.parametrize("script", ["holmes_probing.py", "stats_cost.py"])
def test_quick_mode_without_snakemake(script, bench_out, tmp_path):
    cmd, env = quick(script, bench_out, tmp_path)
    check_report(script, subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600))


@pytest.mark.workflow
@pytest.mark.slurm
@pytest.mark.parametrize("script", ["slurm_overhead.py"])
def test_quick_mode_on_slurm(script, slurm_cluster, bench_out, tmp_path):
    """The cluster is the session's: the script finds it running and leaves it so."""
    cmd, env = quick(script, bench_out, tmp_path)
    check_report(script, subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600))
