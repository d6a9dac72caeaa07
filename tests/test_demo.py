"""The demo models: deterministic, real tokenizer, Llama architecture."""

from __future__ import annotations

import pytest
import torch

from conftest import load_state
from mergelab.demo import DEMO_NAMES, build_demo_models


def test_same_seed_gives_identical_files(tmp_path, tiny_models):
    again = {n: tmp_path / n for n in DEMO_NAMES}
    build_demo_models(again, seed=0, size="tiny")
    for name in DEMO_NAMES:
        files = sorted(p.name for p in tiny_models[name].iterdir())
        assert files == sorted(p.name for p in again[name].iterdir())
        for f in files:
            assert (tiny_models[name] / f).read_bytes() == (again[name] / f).read_bytes(), f"{name}/{f}"


def test_other_seed_differs(tmp_path, tiny_models):
    other = {"base": tmp_path / "base"}
    build_demo_models(other, seed=1, size="tiny")
    assert (other["base"] / "model.safetensors").read_bytes() != (tiny_models["base"] / "model.safetensors").read_bytes()


def test_models_load_with_a_real_tokenizer(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["base"])
    assert tok.is_fast and tok.bos_token == "<s>" and tok.eos_token == "</s>"
    enc = tok("The cat sees the river.", return_offsets_mapping=True)
    assert enc["input_ids"][0] == tok.bos_token_id and len(enc["input_ids"]) > 3
    words = [(s, e) for s, e in enc["offset_mapping"][1:]]
    assert words[0] == (0, 3)  # "The"
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "The cat sees the river."
    model = AutoModelForCausalLM.from_pretrained(tiny_models["base"])
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    with torch.no_grad():
        out = model(torch.tensor([enc["input_ids"]]))
    assert torch.isfinite(out.logits).all()


def test_variants_are_small_distinct_moves_of_the_base(tiny_models):
    base, a, b = (load_state(tiny_models[n]) for n in ("base", "alpha", "beta"))
    for k in base:
        da, db = (a[k] - base[k]).norm(), (b[k] - base[k]).norm()
        assert 0 < da < 0.2 * base[k].norm() + 1e-6 and 0 < db
        assert not torch.equal(a[k], b[k])


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown demo model size"):
        build_demo_models({"base": tmp_path / "b"}, size="huge")
