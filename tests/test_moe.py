"""Method moe: mergekit-moe mixtures of the demo models, from the config to the harness."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import load_state, snakemake, write_config
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment
from mergelab.plan.merge_jobs import merges_table

PROMPTS = {
    "alpha": {"positive": ["Question: What is 1234 plus 5?"]},
    "beta": {"positive": ["The horse is a kind of"], "negative": ["What is 1 plus 1?"]},
}


def _cfg(recipe: dict, models=None) -> dict:
    models = models or {"base": {"demo": "base"}, "alpha": {"demo": "math"}, "beta": {"demo": "words"}}
    r = {"name": "ab", "models": ["alpha", "beta"], "base": "base"}
    r.update(recipe)
    return {"models": models, "merges": [r], "harness": {"tasks": []}, "holmes": {"activate": False}}


def test_moe_is_a_method_like_the_others(tmp_path):
    e = load_experiment(_cfg({"methods": ["linear", "moe"], "moe": {"prompts": PROMPTS}}), "x.yaml", workdir=tmp_path)
    assert list(e.merges) == ["ab_linear_w1", "ab_moe_hidden_e2"]
    spec = e.merges["ab_moe_hidden_e2"]
    assert spec.method == "moe" and spec.parents == ["alpha", "beta"] and spec.base == "base"
    demo = tmp_path / "results" / "demo"
    assert spec.mergekit_config == {
        "base_model": str(demo / "base"),
        "gate_mode": "hidden",
        "dtype": "bfloat16",
        "experts_per_token": 2,
        "experts": [
            {
                "source_model": str(demo / "math"),
                "positive_prompts": PROMPTS["alpha"]["positive"],
                "negative_prompts": [],
            },
            {
                "source_model": str(demo / "words"),
                "positive_prompts": PROMPTS["beta"]["positive"],
                "negative_prompts": PROMPTS["beta"]["negative"],
            },
        ],
    }
    assert "\tmoe\t" in merges_table(e)
    # sweeps over gate mode and experts per token; random gates take every seed
    e = load_experiment(
        _cfg(
            {
                "methods": ["moe"],
                "seeds": [0, 1],
                "moe": {
                    "gate_mode": ["hidden", "random"],
                    "experts_per_token": [1, 2],
                    "prompts": PROMPTS,
                    "architecture": "deepseek",
                    "shared_experts": [{"model": "base", "residual_scale": 0.5}],
                },
            }
        ),
        "x.yaml",
        workdir=tmp_path,
    )
    assert list(e.merges) == [
        "ab_moe_hidden_e1",
        "ab_moe_hidden_e2",
        "ab_moe_random_e1_s0",
        "ab_moe_random_e1_s1",
        "ab_moe_random_e2_s0",
        "ab_moe_random_e2_s1",
    ]
    cfg = e.merges["ab_moe_random_e2_s1"].mergekit_config
    assert cfg["architecture"] == "deepseek" and cfg["shared_experts"][0]["residual_scale"] == 0.5
    assert e.merges["ab_moe_random_e2_s1"].seed == 1


@pytest.mark.parametrize(
    "recipe, key, words",
    [
        (
            {"models": ["alpha"], "methods": ["moe"], "moe": {"gate_mode": "random"}},
            "merges[0].models",
            "at least 2 experts",
        ),
        (
            {"methods": ["moe"], "moe": {"gate_mode": "hiden", "prompts": PROMPTS}},
            "merges[0].moe.gate_mode",
            "did you mean hidden",
        ),
        ({"methods": ["moe"]}, "merges[0].moe.prompts.alpha", "give positive prompts"),
        (
            {"methods": ["moe"], "moe": {"gate_mode": "cheap_embed", "prompts": {"alpha": PROMPTS["alpha"]}}},
            "merges[0].moe.prompts.beta",
            "give positive prompts",
        ),
        (
            {"methods": ["moe"], "moe": {"prompts": {"alpha": PROMPTS["alpha"], "beta": PROMPTS["alpha"]}}},
            "merges[0].moe.prompts",
            "same prompts",
        ),
        (
            {"methods": ["moe"], "moe": {"gate_mode": "random", "experts_per_token": 3}},
            "merges[0].moe.experts_per_token",
            "2 experts",
        ),
        ({"methods": ["moe"], "base": None, "moe": {"gate_mode": "random"}}, "merges[0].base", "base model"),
        ({"methods": ["linear"], "moe": {"gate_mode": "random"}}, "merges[0].moe", "not among"),
        (
            {
                "methods": ["moe"],
                "moe": {"gate_mode": "random", "architecture": "mixtral", "shared_experts": [{"model": "base"}]},
            },
            "merges[0].moe.shared_experts",
            "mixtral",
        ),
        (
            {"methods": ["moe"], "moe": {"gate_mode": "random", "prompts": {"gamma": {"positive": ["x"]}}}},
            "merges[0].moe.prompts.gamma",
            "not an expert",
        ),
        ({"methods": ["moe"], "method_parameters": {"moe": {"weight": 1}}}, "merges[0].method_parameters.moe", "moe:"),
    ],
)
def test_bad_moe_input_is_one_line_naming_the_key(recipe, key, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_experiment(_cfg(recipe), "x.yaml", workdir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and f"x.yaml: {key}:" in msg and words in msg, msg


def _moe(tiny_models, out, gate, seed=0, prompts=PROMPTS):
    from mergelab.merging.merge import run_merge

    cfg = {
        "base_model": str(tiny_models["base"]),
        "gate_mode": gate,
        "dtype": "float32",
        "experts_per_token": 2,
        "experts": [
            {
                "source_model": str(tiny_models[n]),
                "positive_prompts": prompts[n]["positive"],
                "negative_prompts": prompts[n].get("negative", []),
            }
            for n in ("alpha", "beta")
        ],
    }
    run_merge(
        cfg,
        out,
        seed=seed,
        cuda=False,
        threads=1,
        meta={
            "recipe": "ab",
            "method": "moe",
            "seed": seed,
            "inputs": ["base", "alpha", "beta"],
            "parameters": {"gate_mode": gate},
        },
    )
    return out


@pytest.mark.parametrize("gate", ["hidden", "cheap_embed", "random"])
def test_each_gate_mode_builds_a_mixtral_of_the_parents(gate, tiny_models, tmp_path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = _moe(tiny_models, tmp_path / "moe", gate)
    assert (out / "mergekit_moe_config.yml").is_file() and "mergekit-moe" in (out / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(out)
    base_cfg = AutoConfig.from_pretrained(tiny_models["base"])
    assert type(model).__name__ == "MixtralForCausalLM"
    assert model.config.num_local_experts == 2 and model.config.num_experts_per_tok == 2
    assert model.config.num_hidden_layers == base_cfg.num_hidden_layers
    logits = model(torch.tensor([[1, 5, 7, 9]])).logits
    assert logits.shape == (1, 4, base_cfg.vocab_size) and torch.isfinite(logits).all()
    # the experts are the parents' MLPs, everything else is the base's
    moe, base = load_state(out), load_state(tiny_models["base"])
    parents = [load_state(tiny_models[n]) for n in ("alpha", "beta")]
    for layer in range(base_cfg.num_hidden_layers):
        p = f"model.layers.{layer}"
        for i, parent in enumerate(parents):
            gate_up = torch.cat([parent[f"{p}.mlp.gate_proj.weight"], parent[f"{p}.mlp.up_proj.weight"]])
            assert torch.equal(moe[f"{p}.mlp.experts.gate_up_proj"][i], gate_up)
            assert torch.equal(moe[f"{p}.mlp.experts.down_proj"][i], parent[f"{p}.mlp.down_proj.weight"])
        assert torch.equal(moe[f"{p}.self_attn.q_proj.weight"], base[f"{p}.self_attn.q_proj.weight"])
        assert moe[f"{p}.mlp.gate.weight"].shape == (2, base_cfg.hidden_size)


def _sha(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_random_gates_are_reproducible_and_hidden_gates_follow_the_prompts(tiny_models, tmp_path):
    a = _moe(tiny_models, tmp_path / "r0a", "random", seed=0)
    b = _moe(tiny_models, tmp_path / "r0b", "random", seed=0)
    c = _moe(tiny_models, tmp_path / "r1", "random", seed=1)
    assert _sha(a) == _sha(b) and _sha(a) != _sha(c)

    other = {"alpha": {"positive": ["the cat sees the river"]}, "beta": {"positive": ["a bird helps the farmer"]}}
    h1 = load_state(_moe(tiny_models, tmp_path / "h1", "hidden"))
    h2 = load_state(_moe(tiny_models, tmp_path / "h2", "hidden", prompts=other))
    gates = [k for k in h1 if k.endswith("mlp.gate.weight")]
    assert gates and all(not h1[k].equal(h2[k]) for k in gates)
    assert all(h1[k].equal(h2[k]) for k in h1 if k not in gates)  # only the routers depend on the prompts


@pytest.mark.workflow
def test_moe_merge_goes_through_the_harness_with_its_own_settings(tiny_models, tmp_path):
    cfg = _cfg(
        {"methods": ["moe"], "dtype": "float32", "moe": {"prompts": PROMPTS}},
        models={n: {"path": str(p)} for n, p in tiny_models.items()},
    )
    cfg["harness"] = {
        "tasks": ["mergelab_categories"],
        "settings": {"batch_size": 8},
        "model_settings": {"*_moe_*": {"batch_size": 2}},
    }
    cfg["evaluation"] = {"models": ["ab_moe_hidden_e2", "base"]}
    path = write_config(tmp_path, cfg)
    snakemake(tmp_path, path, check=True)
    res = json.loads((tmp_path / "results/harness/ab_moe_hidden_e2/mergelab_categories.json").read_text())
    assert 0.0 <= res["results"]["mergelab_categories"]["acc,none"] <= 1.0
    assert res["config"]["batch_size"] == 2  # the MoE models' own setting
    base = json.loads((tmp_path / "results/harness/base/mergelab_categories.json").read_text())
    assert base["config"]["batch_size"] == 8
    assert (tmp_path / "results/models/ab_moe_hidden_e2/mergekit_moe_config.yml").is_file()
    rows = (tmp_path / "results/tables/harness.csv").read_text()
    assert "ab_moe_hidden_e2" in rows and ",moe," in rows
