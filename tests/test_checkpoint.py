"""Broken model directories are named before anything loads them (issue 15): the cheap
checks of mergelab.runtime.checkpoint, at config time for local parents, in every job for its
model, and a size estimate that never raises."""

from __future__ import annotations

import json
import os
import shutil
import struct

import pytest

from conftest import fake_model_dir, snakemake, write_config
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment
from mergelab.plan.resources import size_of
from mergelab.runtime.checkpoint import CheckpointError, check_model_dir
from mergelab.runtime.jobs import JobError


def _safetensors(head: dict, data: bytes) -> bytes:
    raw = json.dumps(head).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _break(d, how: str):
    """Damage the fake model directory ``d`` in one of the ways real checkpoints get damaged."""
    w = d / "model.safetensors"
    good = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    if how == "empty":
        w.write_bytes(b"")
    elif how == "random":
        w.write_bytes(os.urandom(4096))
    elif how == "cut-short":
        w.write_bytes(w.read_bytes()[:-3])
    elif how == "header-not-json":
        w.write_bytes(struct.pack("<Q", 5) + b"{oops" + bytes(8))
    elif how == "header-too-long":
        w.write_bytes(struct.pack("<Q", 10_000) + b"{}")
    elif how == "wrong-length":
        w.write_bytes(_safetensors({"w": {**good["w"], "shape": [3]}}, bytes(8)))
    elif how == "no-offsets":
        w.write_bytes(_safetensors({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)))
    elif how == "shard-missing":
        w.rename(d / "model-00001-of-00002.safetensors")
        weight_map = {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        return d / "model.safetensors.index.json", "model-00002-of-00002.safetensors"
    elif how == "index-not-json":
        (d / "model.safetensors.index.json").write_text("{")
        return d / "model.safetensors.index.json", "not valid JSON"
    elif how == "config-not-json":
        (d / "config.json").write_text("{'a': 1}")
        return d / "config.json", "not valid JSON"
    elif how == "no-weights":
        w.unlink()
        return d, "no weights"
    return w, ""


BREAKS = [
    "empty",
    "random",
    "cut-short",
    "header-not-json",
    "header-too-long",
    "wrong-length",
    "no-offsets",
    "shard-missing",
    "index-not-json",
    "config-not-json",
    "no-weights",
]


@pytest.mark.parametrize("how", BREAKS)
def test_each_broken_checkpoint_is_named_by_file(tmp_path, how):
    d = fake_model_dir(tmp_path / "m")
    check_model_dir(d)  # the intact one passes
    named, what = _break(d, how)
    with pytest.raises(CheckpointError) as err:
        check_model_dir(d)
    msg = str(err.value)
    assert msg.startswith(f"{named}: ") and what in msg and "\n" not in msg
    # a job meeting it says the same in one line (a JobError); the size estimate falls back, never raises
    assert isinstance(err.value, JobError)
    if how != "config-not-json":
        assert size_of(str(d)) is None


def test_real_checkpoints_pass(tiny_models):
    for d in tiny_models.values():
        check_model_dir(d)


@pytest.mark.parametrize("how", ["empty", "random", "cut-short", "shard-missing"])
def test_a_broken_local_parent_stops_the_config(tmp_path, how):
    fake_model_dir(tmp_path / "models" / "base")
    d = fake_model_dir(tmp_path / "models" / "math")
    named, _ = _break(d, how)
    cfg = {"models": {"base": {"path": "models/base"}, "math": {"path": "models/math"}}}
    with pytest.raises(ConfigError) as err:
        load_experiment(cfg, "cfg.yaml", workdir=tmp_path)
    assert str(err.value).startswith(f"cfg.yaml: models.math.path: {named}: ")


def test_a_broken_demo_model_says_how_to_train_it_again(tmp_path):
    d = fake_model_dir(tmp_path / "results" / "demo" / "math")
    _break(d, "empty")
    with pytest.raises(ConfigError, match=r"models\.math\.demo: .*model\.safetensors: .*delete results/demo/math"):
        load_experiment({"models": {"math": {"demo": "math"}}}, "cfg.yaml", workdir=tmp_path)


@pytest.mark.workflow
def test_zero_byte_weights_stop_even_a_dry_run_with_one_line(tmp_path, tiny_models):
    """The reported case: a 0-byte weights file made `snakemake -n --keep-going` die with a
    struct.error traceback from the size estimate while the DAG was built."""
    broken = tmp_path / "models" / "broken"
    shutil.copytree(tiny_models["alpha"], broken)
    (broken / "model.safetensors").write_bytes(b"")
    cfg = {
        "models": {"base": {"path": str(tiny_models["base"])}, "broken": {"path": "models/broken"}},
        "harness": {"tasks": ["mergelab_categories"]},
    }
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "-n", "--keep-going")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"mergelab: experiment.yaml: models.broken.path: {broken / 'model.safetensors'}: "
        "not a safetensors file (0 bytes; the header length alone takes 8)"
    ), last
    assert "Traceback" not in proc.stderr and "struct.error" not in proc.stderr
