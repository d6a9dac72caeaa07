"""Resource estimates from the model size: the arithmetic, the reading of real
checkpoints, and what Snakemake hands the jobs (local and SLURM alike)."""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import load_state, snakemake, write_config
from mergelab.plan.resources import FALLBACK, GIB, Size, checkpoint_size, estimate, resolve, size_of
from mergelab.plan.rules import RULES
from mergelab.runtime.checkpoint import CheckpointError


def _numel_bytes(state):
    return (sum(t.numel() for t in state.values()), sum(t.numel() * t.element_size() for t in state.values()))


def test_checkpoint_size_is_the_sum_of_the_tensors(tiny_models, tmp_path):
    state = load_state(tiny_models["alpha"])
    params, nbytes = _numel_bytes(state)
    assert checkpoint_size(tiny_models["alpha"]) == Size(params, nbytes)

    # sharded, with an index, in half precision: the same parameters, half the bytes
    from safetensors.torch import save_file

    d = tmp_path / "sharded"
    d.mkdir()
    names = sorted(state)
    import torch

    half = {k: v.to(torch.bfloat16) for k, v in state.items()}
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for f, keys in shards.items():
        save_file({k: half[k].contiguous() for k in keys}, str(d / f))
    (d / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}})
    )
    assert checkpoint_size(d) == Size(params, nbytes // 2)

    # a hub fetch receipt names its snapshot
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps({"path": str(d)}))
    assert size_of(str(receipt)) == Size(params, nbytes // 2)
    # not there yet (before its fetch or merge): unknown
    assert size_of(str(tmp_path / "missing")) is None
    assert size_of(str(tmp_path / "missing.json")) is None
    # a shard named in the index but absent: named by checkpoint_size; the estimate
    # falls back (never raises, never a wrong count)
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        checkpoint_size(d)
    assert size_of(str(d)) is None


def test_evaluation_estimate_fits_the_weights_on_the_gpus():
    b7 = Size(7_000_000_000, 14_000_000_000)  # bf16
    b70 = Size(70_000_000_000, 140_000_000_000)
    w7 = 7e9 * 2 / GIB
    r = estimate(RULES["harness_eval"].gpu, [b7])
    assert r == {"gpu": 1, "mem_mb": 1024 * math.ceil(4 + 1.25 * w7), "runtime": math.ceil(60 + 15 * 7)}
    # 70B in bf16: 130 GiB of weights + 20% + 4 -> 161 GiB: three 80 GB GPUs, seven 24 GB ones
    assert estimate(RULES["harness_eval"].gpu, [b70])["gpu"] == 3
    assert estimate(RULES["holmes_eval"].gpu, [b70], gpu_memory_gb=24)["gpu"] == math.ceil(
        (1.2 * 70e9 * 2 / GIB + 4) / (24e9 / GIB)
    )
    # gpu_memory_gb is GB, the needs GiB: a 76.9 GiB need does not fit one 80 GB card (74.5 GiB)
    b32 = Size(32_600_000_000, 65_200_000_000)
    need = 1.2 * 32.6e9 * 2 / GIB + 4  # GiB
    assert 80e9 / GIB < need < 80  # one card if the 80 were GiB
    assert estimate(RULES["harness_eval"].gpu, [b32])["gpu"] == 2
    # the evaluation dtype, not the stored one, decides; 4-bit weights take an eighth of float32
    assert estimate(RULES["harness_eval"].gpu, [b7], dtype="float32", gpu_memory_gb=24)["gpu"] == 2
    assert estimate(RULES["harness_eval"].gpu, [b70], quantization="4bit")["gpu"] == 1
    assert estimate(RULES["holmes_eval"].gpu, [b7])["runtime"] == math.ceil(30 + 5 * 7)
    # unknown size (not on disk yet): the fallback, re-evaluated before the job starts
    assert estimate(RULES["harness_eval"].gpu, [None]) == FALLBACK


def test_merge_estimate_streams_on_one_gpu():
    b7 = Size(7_000_000_000, 14_000_000_000)
    r = estimate(RULES["merge"].gpu, [b7, b7, b7], dtype="bfloat16")
    assert r["gpu"] == 1
    assert r["runtime"] == math.ceil(10 + 2 * 21)
    assert r["mem_mb"] == int(1024 * (4 + min(2 * 7e9 * 2 / GIB, 12)))
    tiny = Size(1_000_000, 4_000_000)
    one = estimate(RULES["merge"].gpu, [tiny, tiny], dtype="float32")["mem_mb"]
    stacked = estimate(RULES["merge"].gpu, [tiny, tiny], dtype="float32", passthrough=True)["mem_mb"]
    assert stacked > one  # a passthrough stack is as big as its parts together
    assert estimate(RULES["merge"].gpu, [tiny, None]) == FALLBACK


def test_config_overrides_win_over_the_estimate():
    est = {"gpu": 3, "mem_mb": 9000, "runtime": 100}
    assert resolve("harness_eval", est, None, None) == est
    assert resolve("harness_eval", est, 2, None)["gpu"] == 2
    over = {"harness_eval": {"gpu": 1, "runtime": 7}, "holmes_eval": {"gpu": 5}}
    assert resolve("harness_eval", est, 2, over) == {"gpu": 1, "mem_mb": 9000, "runtime": 7}
    assert resolve("merge", est, None, over) == est
    # a key left null in the config keeps the estimate
    assert resolve("harness_eval", est, None, {"harness_eval": {"gpu": None, "mem_mb": None, "runtime": 7}}) == {
        "gpu": 3,
        "mem_mb": 9000,
        "runtime": 7,
    }


def _dry_run_resources(output: str) -> dict:
    """(rule, wildcards) -> resources dict, from a dry run's job blocks."""
    out = {}
    for block in re.split(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$|\n\s*\n", output, flags=re.M):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        res = re.search(r"^\s*resources: (.*)$", block, re.M)
        if not rule or not res:
            continue
        wc = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        values = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
        out[(rule.group(1), wc.group(1).strip() if wc else "")] = values
    return out


@pytest.mark.workflow
def test_jobs_ask_for_what_their_model_needs(tiny_models, tmp_path):
    """A dry run shows each job's gpu/mem_mb/runtime: from the model's size and
    compute.gpu_memory_gb, then models.<name>.resources, then --set-resources."""
    cfg = {
        "models": {
            "base": {"path": str(tiny_models["base"])},
            "alpha": {"path": str(tiny_models["alpha"]), "resources": {"harness_eval": {"gpu": 1, "runtime": 7}}},
            "beta": {"path": str(tiny_models["beta"]), "gpus": 2},
        },
        "merges": [{"name": "ab", "models": ["alpha", "beta"], "base": "base", "methods": ["task_arithmetic"]}],
        "harness": {"tasks": ["mergelab_categories"]},
        "holmes": {"activate": False},
        "compute": {"gpu_memory_gb": 1.5},
    }
    configfile = write_config(tmp_path, cfg)
    proc = snakemake(tmp_path, configfile, "-n", "evaluations", "merges", check=True)
    jobs = _dry_run_resources(proc.stdout)
    size = checkpoint_size(tiny_models["base"])
    w = size.params * 4 / GIB  # float32 tiny models
    base = jobs[("harness_eval", "model=base, task=mergelab_categories")]
    assert int(base["gpu"]) == math.ceil((1.2 * w + 4) / (1.5e9 / GIB)) == 3  # 1.5 GB: 1.4 GiB
    assert int(base["mem_mb"]) == 1024 * math.ceil(4 + 1.25 * w)
    assert int(base["runtime"]) == math.ceil(60 + 15 * size.params / 1e9)
    alpha = jobs[("harness_eval", "model=alpha, task=mergelab_categories")]
    assert (alpha["gpu"], alpha["runtime"]) == ("1", "7")
    assert jobs[("harness_eval", "model=beta, task=mergelab_categories")]["gpu"] == "2"
    # the merge reads three models that exist: estimated from them, one GPU
    merge = jobs[("merge", "model=ab_task_arithmetic_w0.5")]
    assert merge["gpu"] == "1" and int(merge["mem_mb"]) < FALLBACK["mem_mb"]
    # the merge's own evaluation, before the merge is made: sized as the merge will be (its
    # parents' shape), not the fallback; Snakemake asks again before it runs
    made = jobs[("harness_eval", "model=ab_task_arithmetic_w0.5, task=mergelab_categories")]
    assert made == base

    proc = snakemake(
        tmp_path, configfile, "-n", "evaluations", "--set-resources", "harness_eval:runtime=99", check=True
    )
    assert {v["runtime"] for k, v in _dry_run_resources(proc.stdout).items() if k[0] == "harness_eval"} == {"99"}


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"compute": {"gpu_memory_gb": 0}}, "compute.gpu_memory_gb"),
        ({"compute": {"light_rules": "slurm"}}, "compute.light_rules"),
        ({"models": {"m": {"demo": "base", "resources": {"harness": {"gpu": 1}}}}}, "models.m.resources"),
        ({"models": {"m": {"demo": "base", "resources": {"merge": {"mem": 1}}}}}, "models.m.resources.merge"),
    ],
)
def test_bad_resource_settings_name_the_key(bad, key, tmp_path):
    from mergelab.plan.errors import ConfigError
    from mergelab.plan.experiment import load_experiment

    cfg = {"models": {"m": {"demo": "base"}}, "harness": {"tasks": []}, "holmes": {"activate": False}}
    cfg.update(bad)
    with pytest.raises(ConfigError) as e:
        load_experiment(cfg, "experiment.yaml", workdir=tmp_path)
    assert key in str(e.value)


def test_gpu_jobs_share_the_cores_among_the_gpus():
    from mergelab.plan.resources import gpu_job_threads

    assert gpu_job_threads(16, 4) == 4  # --cores 16 --resources gpu=4: four jobs of four threads
    assert gpu_job_threads(2, 4) == 1
    assert gpu_job_threads(16, None) == 1 and gpu_job_threads(16, 0) == 1  # CPU run: one thread, many jobs


def test_a_merge_not_made_yet_is_sized_as_it_will_be(tiny_models, tmp_path):
    """Before a merge exists, its evaluations are sized from what it reads (its parents' shape, in
    the dtype it is written in; a merge of merges through the merge it reads), not the fallback."""
    from mergelab.plan.experiment import load_experiment
    from mergelab.plan.resources import merge_size, model_size
    from mergelab.plan.rules import rule_resources

    cfg = {
        "models": {n: {"path": str(tiny_models[n])} for n in ("base", "alpha", "beta")},
        "merges": [
            {"name": "ab", "models": ["alpha", "beta"], "base": "base", "methods": ["task_arithmetic"]},
            {"name": "half", "models": ["ab", "base"], "methods": ["linear"], "dtype": "bfloat16"},
        ],
        "harness": {"tasks": ["mergelab_categories"]},
        "compute": {"gpu_memory_gb": 1.5},
    }
    exp = load_experiment(cfg, "test.yaml", workdir=tmp_path)
    ab, half = list(exp.merges)
    base = checkpoint_size(tiny_models["base"])
    assert model_size(exp, "base") == base
    assert merge_size(exp, ab).params == base.params  # written in float32, as its parents
    assert merge_size(exp, half) == Size(base.params, base.params * 2)  # bfloat16, through ab
    assert model_size(exp, half) == merge_size(exp, half)  # not on disk: the estimate
    job = rule_resources(exp, "harness_eval", model=ab, task="mergelab_categories")
    assert job == rule_resources(exp, "harness_eval", model="base", task="mergelab_categories") != FALLBACK
