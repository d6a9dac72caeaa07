"""The demo models: deterministic, real tokenizer, Llama architecture; the trained experts have their skills."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import load_state
from mergelab.embedded.demo import DEMO_NAMES, Schedule, build_demo_models

SHORT = Schedule(base_steps=3, math_steps=2, words_steps=2)  # the demo's training, a few steps of each phase


def _same_files(a, b) -> None:
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f"{a}/{f}"


def test_same_seed_gives_identical_files(tmp_path, tiny_models):
    again = {n: tmp_path / n for n in DEMO_NAMES}
    build_demo_models(again, seed=0, size="tiny")
    for ours, theirs in zip(DEMO_NAMES, ("base", "alpha", "beta")):
        _same_files(again[ours], tiny_models[theirs])


@pytest.mark.slow
def test_training_twice_with_the_same_seed_gives_identical_weights(tmp_path):
    runs = [{n: tmp_path / f"{run}-{n}" for n in DEMO_NAMES} for run in ("a", "b", "c")]
    build_demo_models(runs[0], seed=0, size="demo", schedule=SHORT)
    build_demo_models(runs[1], seed=0, size="demo", schedule=SHORT)
    build_demo_models(runs[2], seed=3, size="demo", schedule=SHORT)
    for n in DEMO_NAMES:
        _same_files(runs[0][n], runs[1][n])
        assert (runs[0][n] / "model.safetensors").read_bytes() != (runs[2][n] / "model.safetensors").read_bytes()
    base, math, words = (load_state(runs[0][n]) for n in DEMO_NAMES)
    assert all(not torch.equal(base[k], math[k]) for k in base if "embed" not in k)  # fine-tuned, not copied
    assert any(not torch.equal(math[k], words[k]) for k in base)


def test_other_seed_differs(tmp_path, tiny_models):
    other = {"base": tmp_path / "base"}
    build_demo_models(other, seed=1, size="tiny")
    assert (other["base"] / "model.safetensors").read_bytes() != (
        tiny_models["base"] / "model.safetensors"
    ).read_bytes()


def test_models_load_with_a_real_tokenizer(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["base"])
    assert tok.is_fast and tok.bos_token == "<s>" and tok.eos_token == "</s>"
    enc = tok("The cat sees the river.", return_offsets_mapping=True)
    assert enc["input_ids"][0] == tok.bos_token_id and len(enc["input_ids"]) > 3
    words = [(s, e) for s, e in enc["offset_mapping"][1:]]
    assert words[0] == (0, 3)  # "The"
    digits = tok.convert_ids_to_tokens(tok("What is 4312 plus 5?")["input_ids"])
    assert ["4", "3", "1", "2"] == digits[digits.index("4") : digits.index("4") + 4]  # one token per digit
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "The cat sees the river."
    model = AutoModelForCausalLM.from_pretrained(tiny_models["base"])
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    with torch.no_grad():
        out = model(torch.tensor([enc["input_ids"]]))
    assert torch.isfinite(out.logits).all()


def test_variants_are_small_distinct_moves_of_the_base(tiny_models):
    base, a, b = (load_state(tiny_models[n]) for n in ("base", "alpha", "beta"))  # the "tiny" size: untrained
    for k in base:
        da, db = (a[k] - base[k]).norm(), (b[k] - base[k]).norm()
        assert 0 < da < 0.2 * base[k].norm() + 1e-6 and 0 < db
        assert not torch.equal(a[k], b[k])


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown demo model size"):
        build_demo_models({"base": tmp_path / "b"}, size="huge")


@pytest.mark.workflow
def test_each_expert_beats_the_base_on_its_own_held_out_skill(default_run, trained_demo):
    """The demo_models rule trains (once per test run: trained_demo); lm-eval measures the held-out
    items (in the embedded default's run, default_run, which evaluates the three demo models on the
    three demo tasks and probes them). The base has seen neither question form and is at chance on
    both tasks (0 for exact match, 1/4 for the kinds)."""
    wd, _ = default_run

    def score(model, task, metric):
        return json.loads((wd / f"results/harness/{model}/{task}.json").read_text())["results"][task][metric]

    arith = {m: score(m, "mergelab_arithmetic", "exact_match,first-number") for m in DEMO_NAMES}
    kinds = {m: score(m, "mergelab_categories", "acc,none") for m in DEMO_NAMES}
    assert arith["math"] >= 0.8 and arith["base"] <= 0.05 and arith["words"] <= 0.05, arith
    assert kinds["words"] >= 0.75 and kinds["base"] <= 0.45 and kinds["math"] <= 0.45, kinds
    assert arith["math"] - arith["base"] >= 0.75 and kinds["words"] - kinds["base"] >= 0.4
    ppl = {m: score(m, "mergelab_text_ppl", "word_perplexity,none") for m in DEMO_NAMES}
    assert all(1 < v < 3 * ppl["base"] for v in ppl.values()), ppl  # forgetting, but generic text still modelled
    log = (trained_demo / "logs/demo_models/demo_models.log").read_text()
    assert "math expert trained" in log and "words expert trained" in log
    # the minute (or, on busy cores, many) of training shows on the console, step by step
    console = (trained_demo / "console.txt").read_text()
    for line in (
        "base: step 1/600, loss",
        "base: step 600/600",
        "math expert: step 401/800",
        "words expert: step 300/300",
    ):
        assert f"[demo_models] {line}" in console, console[-2000:]
    assert 15 <= console.count("[demo_models] ") <= 40  # progress, not a flood
    for m in DEMO_NAMES:  # the embedded probing set works on the trained models
        scores = (wd / f"results/holmes/{m}/scores.csv").read_text().splitlines()
        assert len(scores) == 1 + 8 * 5, scores[:3]  # its 8 datasets x the default's 5 probe seeds


@pytest.mark.workflow
def test_the_task_vector_figures_docs_demo_quotes(trained_demo):
    """docs/demo.md explains the merges by the task vectors' norms and angle: they are these models'."""
    import re

    from conftest import REPO

    text = " ".join((REPO / "docs" / "demo.md").read_text().split())
    found = re.findall(r"norms are (\d+)% \(math\) and (\d+)% \(words\) of the base's, .*?cosine (-?\d\.\d+)\)", text)
    assert len(found) == 1, "docs/demo.md no longer quotes the task vectors: rewrite this test with it"
    math_pct, words_pct, cosine = found[0]

    def flat(name):
        state = load_state(trained_demo / "results" / "demo" / name)
        return torch.cat([state[k].flatten().double() for k in sorted(state)])

    base, math_, words = flat("base"), flat("math"), flat("words")
    tv_math, tv_words = math_ - base, words - base
    assert round(100 * float(tv_math.norm() / base.norm())) == int(math_pct)
    assert round(100 * float(tv_words.norm() / base.norm())) == int(words_pct)
    assert round(float(torch.nn.functional.cosine_similarity(tv_math, tv_words, dim=0)), 2) == float(cosine)
