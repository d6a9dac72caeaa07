"""Every mergekit method through the workflow, on tiny models, and the numbers they must give."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import load_state, snakemake, write_config
from mergelab.plan.methods import METHODS

pytestmark = pytest.mark.workflow

TV = [
    "task_arithmetic",
    "ties",
    "dare_ties",
    "dare_linear",
    "breadcrumbs",
    "breadcrumbs_ties",
    "della",
    "della_linear",
    "sce",
    "ram",
    "ramplus_tl",
    "model_stock",
    "nuslerp",
    "multislerp",
]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, tiny_models):
    wd = tmp_path_factory.mktemp("campaign")
    raw = wd / "frank.yml"
    raw.write_text(
        yaml.safe_dump(
            {
                "merge_method": "passthrough",
                "dtype": "float32",
                "slices": [
                    {"sources": [{"model": "base", "layer_range": [0, 1]}]},
                    {"sources": [{"model": "alpha", "layer_range": [1, 2]}]},
                    {"sources": [{"model": "beta", "layer_range": [1, 2]}]},
                ],
            }
        )
    )
    cfg = {
        "models": {n: {"path": str(p)} for n, p in tiny_models.items()},
        "merges": [
            {
                "name": "lin",
                "models": ["alpha", "beta"],
                "methods": ["linear", "karcher"],
                "method_parameters": {"linear": {"weight": {"alpha": 0.3, "beta": 0.9}}},
                "dtype": "float32",
            },
            {
                "name": "pair",
                "models": ["alpha", "beta"],
                "methods": ["slerp", "nearswap", "arcee_fusion"],
                "method_parameters": {"slerp": {"t": [0, 1, 0.5]}},
                "dtype": "float32",
            },
            {
                "name": "tv",
                "models": ["alpha", "beta"],
                "base": "base",
                "methods": TV,
                "method_parameters": {"task_arithmetic": {"weight": {"alpha": 0.3, "beta": 0.6}}},
                "dtype": "float32",
            },
            {
                "name": "tv2",
                "models": ["alpha", "beta"],
                "base": "base",
                "methods": ["dare_ties"],
                "seeds": [0, 1],
                "dtype": "float32",
            },
            {"name": "one", "models": ["alpha"], "methods": ["passthrough"], "dtype": "float32"},
            {"name": "frank", "mergekit_config": "frank.yml"},
        ],
    }
    path = write_config(wd, cfg)
    proc = snakemake(wd, path, "merges", check=True)
    return wd, path, proc


def merged(wd: Path, model_id: str) -> Path:
    return wd / "results" / "models" / model_id


def table(wd: Path) -> dict:
    with open(wd / "results" / "merges.tsv") as fh:
        return {r["model"]: r for r in csv.DictReader(fh, delimiter="\t")}


def test_every_method_merges_loads_and_runs(campaign):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wd, _, _ = campaign
    rows = table(wd)
    assert {r["method"] for r in rows.values()} == set(METHODS)
    for mid, row in rows.items():
        out = merged(wd, mid)
        assert (out / "config.json").is_file() and list(out.glob("*.safetensors")), mid
        assert (out / "tokenizer.json").is_file() and (out / "mergekit_config.yml").is_file(), mid
        card = (out / "README.md").read_text()
        assert card.startswith("---\n") and "mergelab" in card and row["method"] in card, mid
        assert yaml.safe_load((out / "mergekit_config.yml").read_text()) == json.loads(row["mergekit_config"])
        model = AutoModelForCausalLM.from_pretrained(out)
        tok = AutoTokenizer.from_pretrained(out)
        ids = tok("The cat sees the river.", return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits
        assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all(), mid
    # the passthrough frankenmerge stacked three layers
    assert json.loads((merged(wd, "frank") / "config.json").read_text())["num_hidden_layers"] == 3


def test_linear_is_the_normalised_weighted_mean(campaign, tiny_models):
    wd, _, _ = campaign
    a, b = load_state(tiny_models["alpha"]), load_state(tiny_models["beta"])
    out = load_state(merged(wd, "lin_linear_w0.3-0.9"))
    assert out.keys() == a.keys()
    for k in a:
        torch.testing.assert_close(out[k], (0.3 * a[k] + 0.9 * b[k]) / 1.2, rtol=1e-5, atol=1e-6)


def test_task_arithmetic_adds_weighted_task_vectors(campaign, tiny_models):
    wd, _, _ = campaign
    base = load_state(tiny_models["base"])
    a, b = load_state(tiny_models["alpha"]), load_state(tiny_models["beta"])
    out = load_state(merged(wd, "tv_task_arithmetic_w0.3-0.6"))
    for k in base:
        expect = base[k] + 0.3 * (a[k] - base[k]) + 0.6 * (b[k] - base[k])
        torch.testing.assert_close(out[k], expect, rtol=1e-5, atol=1e-6)


def test_slerp_endpoints(campaign, tiny_models):
    wd, _, _ = campaign
    a, b = load_state(tiny_models["alpha"]), load_state(tiny_models["beta"])
    t0, t1 = load_state(merged(wd, "pair_slerp_t0")), load_state(merged(wd, "pair_slerp_t1"))
    mid = load_state(merged(wd, "pair_slerp_t0.5"))
    for k in a:
        torch.testing.assert_close(t0[k], a[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(t1[k], b[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(mid[k], a[k]) and not torch.allclose(mid[k], b[k]) for k in a)


def test_dare_ties_seeds(campaign):
    wd, _, _ = campaign
    same_a = (merged(wd, "tv_dare_ties_d0.5_w0.5_s0") / "model.safetensors").read_bytes()
    same_b = (merged(wd, "tv2_dare_ties_d0.5_w0.5_s0") / "model.safetensors").read_bytes()
    other = (merged(wd, "tv2_dare_ties_d0.5_w0.5_s1") / "model.safetensors").read_bytes()
    assert same_a == same_b
    assert same_a != other


def test_logs_and_benchmarks_for_every_merge(campaign):
    wd, _, _ = campaign
    for mid in table(wd):
        log = wd / "logs" / "merge" / f"{mid}.log"
        assert log.is_file() and f"merging {mid} on cpu" in log.read_text()
        assert (wd / "benchmarks" / "merge" / f"{mid}.tsv").is_file()
    assert not list((wd / "results" / "models").glob(".*partial"))


def test_nothing_to_do_after_a_run(campaign):
    wd, path, _ = campaign
    proc = snakemake(wd, path, "merges", "-n", check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr
