"""Bring your own merges (issue 16): raw mergekit files exactly as mergekit takes them (model
keys or paths wherever mergekit reads a model, multi-document files as chains), and merges
of merges, with their lineage."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import fake_model_dir
from mergelab.plan.catalogue import catalogue
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment
from mergelab.plan.merge_jobs import merges_table
from mergelab.plan.refs import map_refs, refs


@pytest.fixture()
def wd(tmp_path):
    for n in ("base", "alpha", "beta", "gamma"):
        fake_model_dir(tmp_path / "models" / n)
    return tmp_path


def models(*names):
    return {n: {"path": f"models/{n}"} for n in names}


def exp(wd, merges, names=("base", "alpha", "beta", "gamma")):
    return load_experiment({"models": models(*names), "merges": merges}, "cfg.yaml", workdir=wd)


# ---- where mergekit reads a model

EVERY_PLACE = {
    "merge_method": "linear",
    "base_model": "r1",
    "slices": [{"sources": [{"model": "r2", "layer_range": [0, 1]}], "base_model": "r3"}],
    "tokenizer": {
        "source": "r4",
        "tokens": {
            "<s>": {"source": "r5"},
            "</s>": {"source": {"kind": "model_token", "model": "r6", "token": "a"}},
            "<unk>": {"source": {"kind": "zero"}},
        },
    },
}


def test_refs_are_every_model_reference_mergekit_reads():
    """Checked against mergekit's own config classes: the ModelReferences they parse are the refs found."""
    from mergekit.common import ModelReference
    from mergekit.config import MergeConfiguration

    def parsed(node, found):
        if isinstance(node, ModelReference):
            found.add(node.model.path)
        elif hasattr(type(node), "model_fields"):
            for name in type(node).model_fields:
                parsed(getattr(node, name), found)
        elif isinstance(node, dict):
            for v in node.values():
                parsed(v, found)
        elif isinstance(node, (list, tuple)):
            for v in node:
                parsed(v, found)
        return found

    modules = {"merge_method": "linear", "modules": {"m": {"models": [{"model": "r7"}]}}, "tokenizer_source": "r8"}
    for variant, expected in ((EVERY_PLACE, {f"r{i}" for i in range(1, 7)}), (modules, {"r7", "r8"})):
        assert parsed(MergeConfiguration.model_validate(variant), set()) == expected
        assert set(refs(variant)) == expected
    # keyword sources name no model
    assert refs({"tokenizer_source": "union", "tokenizer": {"source": "base"}}) == []
    assert map_refs(EVERY_PLACE, str.upper)["tokenizer"]["tokens"]["</s>"]["source"]["model"] == "R6"


# ---- raw files: keys and paths everywhere


def _write(wd, name, text):
    (wd / name).write_text(text)
    return name


def test_keys_in_the_tokenizer_block_become_paths_and_inputs(wd):
    raw = _write(
        wd,
        "tok.yml",
        "merge_method: linear\nmodels:\n  - model: alpha\n    parameters: {weight: 1}\n"
        "  - model: beta\n    parameters: {weight: 1}\n"
        "tokenizer:\n  source: beta\n  tokens:\n    <s>: {source: gamma}\n"
        "    </s>: {source: {kind: model_token, model: base, token: a}}\n",
    )
    e = exp(wd, [{"name": "tok", "mergekit_config": raw}])
    spec = e.merges["tok"]
    tok = spec.mergekit_config["tokenizer"]
    assert tok["source"] == str(wd / "models" / "beta")
    assert tok["tokens"]["<s>"]["source"] == str(wd / "models" / "gamma")
    assert tok["tokens"]["</s>"]["source"]["model"] == str(wd / "models" / "base")
    assert spec.inputs == ["alpha", "beta", "gamma", "base"]
    assert e.merge_inputs("tok") == [f"models/{n}" for n in ("alpha", "beta", "gamma", "base")]


def test_parents_named_by_path_are_inputs_and_provenance(wd):
    raw = _write(
        wd,
        "paths.yml",
        "merge_method: task_arithmetic\nbase_model: models/base\nmodels:\n"
        "  - model: ./models/alpha\n    parameters: {weight: 0.5}\n"
        f"  - model: {wd / 'models' / 'beta'}\n    parameters: {{weight: 0.5}}\n",
    )
    e = exp(wd, [{"name": "p", "mergekit_config": raw}])
    spec = e.merges["p"]
    assert spec.inputs == [] and spec.path_inputs == ["models/base", "models/alpha", "models/beta"]
    assert spec.mergekit_config["base_model"] == str(wd / "models" / "base")
    assert e.merge_inputs("p") == ["models/base", "models/alpha", "models/beta"]
    row = merges_table(e).splitlines()[1].split("\t")
    assert row[0] == "p" and row[4] == "models/base,models/alpha,models/beta"
    assert e.job("merge", model="p").card["inputs"] == ["models/base", "models/alpha", "models/beta"]
    assert catalogue(e).models["p"]["path_inputs"] == ["models/base", "models/alpha", "models/beta"]
    # the params hold no absolute path of the campaign's folder
    assert str(wd) not in json.dumps(e.job_params("merge", model="p"))


def test_a_path_to_a_broken_model_is_named(wd):
    (fake_model_dir(wd / "elsewhere") / "model.safetensors").write_bytes(b"")
    raw = _write(wd, "p.yml", "merge_method: linear\nmodels: [{model: elsewhere}, {model: models/beta}]\n")
    with pytest.raises(ConfigError, match=r"mergekit_config: p\.yml: model 'elsewhere': .*model\.safetensors: "):
        exp(wd, [{"name": "p", "mergekit_config": raw}])


# ---- multi-document files: chained stages

CHAIN = """name: ab
merge_method: linear
models: [{model: alpha, parameters: {weight: 1}}, {model: models/beta, parameters: {weight: 1}}]
dtype: float32
---
merge_method: slerp
base_model: ab
models: [{model: ab}, {model: gamma}]
parameters: {t: 0.3}
dtype: float32
"""


def test_a_multi_document_file_is_a_chain_of_merges(wd):
    e = exp(wd, [{"name": "chain", "mergekit_config": _write(wd, "chain.yml", CHAIN)}])
    assert list(e.merges) == ["chain-ab", "chain"]
    ab, out = e.merges["chain-ab"], e.merges["chain"]
    assert ab.inputs == ["alpha"] and ab.path_inputs == ["models/beta"]
    assert out.inputs == ["chain-ab", "gamma"] and out.base == "chain-ab"
    assert out.mergekit_config["base_model"] == str(wd / "results" / "models" / "chain-ab")
    assert e.merge_inputs("chain") == ["results/models/chain-ab", "models/gamma"]
    assert "name" not in ab.mergekit_config


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "name: a\nmerge_method: linear\nmodels: [{model: b}]\n---\nname: b\nmerge_method: linear\nmodels: [{model: a}]\n",
            "its stages name each other in a cycle: a → b → a",
        ),
        (
            "merge_method: linear\nmodels: [{model: alpha}]\n---\nmerge_method: linear\nmodels: [{model: beta}]\n",
            "documents 1 and 2 both lack a name",
        ),
        (
            "name: a\nmerge_method: linear\nmodels: [{model: alpha}]\n---\nname: a\nmerge_method: linear\nmodels: []\n",
            "two documents are named 'a'",
        ),
    ],
)
def test_bad_multi_document_files_are_refused(wd, text, message):
    with pytest.raises(ConfigError) as err:
        exp(wd, [{"name": "m", "mergekit_config": _write(wd, "m.yml", text)}])
    assert str(err.value).startswith("cfg.yaml: merges[0].mergekit_config: m.yml") and message in str(err.value)


# ---- merges of merges

CHAINED = [
    {"name": "B", "models": ["A", "gamma"], "methods": ["slerp"], "parameters": {"t": 0.5}},
    {"name": "A", "models": ["alpha", "beta"], "base": "base", "methods": ["ties"]},
]


def test_a_recipe_reads_another_recipes_merge_in_any_order(wd):
    e = exp(wd, CHAINED)
    assert list(e.merges) == ["B_slerp_t0.5", "A_ties_d0.5_w0.5"]  # config order
    b = e.merges["B_slerp_t0.5"]
    assert b.inputs == ["A_ties_d0.5_w0.5", "gamma"]  # the recipe name resolved to its one merge
    assert b.mergekit_config["base_model"] == str(wd / "results" / "models" / "A_ties_d0.5_w0.5")
    assert e.merge_inputs("B_slerp_t0.5") == ["results/models/A_ties_d0.5_w0.5", "models/gamma"]
    tree = e.lineage("B_slerp_t0.5")
    assert [t["model"] for t in tree["inputs"]] == ["A_ties_d0.5_w0.5", "gamma"]
    assert [t["model"] for t in tree["inputs"][0]["inputs"]] == ["base", "alpha", "beta"]
    assert catalogue(e).models["B_slerp_t0.5"]["lineage"] == tree
    assert "lineage" not in catalogue(e).models["A_ties_d0.5_w0.5"]  # one level: no tree to add
    card = e.job("merge", model="B_slerp_t0.5").card
    assert card["lineage"] == tree and card["inputs"] == ["A_ties_d0.5_w0.5", "gamma"]
    # a merge id works as well as the recipe name
    by_id = exp(wd, [dict(CHAINED[0], models=["A_ties_d0.5_w0.5", "gamma"]), CHAINED[1]])
    assert by_id.merges["B_slerp_t0.5"].mergekit_config == b.mergekit_config


def test_a_raw_file_may_name_a_merge(wd):
    raw = _write(wd, "r.yml", "merge_method: linear\nmodels: [{model: A}, {model: gamma}]\n")
    e = exp(wd, [{"name": "r", "mergekit_config": raw}, CHAINED[1]])
    assert e.merges["r"].inputs == ["A_ties_d0.5_w0.5", "gamma"]


@pytest.mark.parametrize(
    "merges, message",
    [
        (
            [dict(CHAINED[0], models=["A_ties", "gamma"]), CHAINED[1]],
            "cfg.yaml: merges[0].models[0]: unknown model 'A_ties'",
        ),
        (
            [
                {"name": "X", "models": ["Y", "alpha"], "methods": ["slerp"]},
                {"name": "Y", "models": ["X", "beta"], "methods": ["slerp"]},
            ],
            "cfg.yaml: merges[0].models[0]: 'Y' is made from this recipe's own merges: a cycle of recipes X → Y → X",
        ),
        (
            [{"name": "S", "models": ["S_linear_w1", "alpha"], "methods": ["linear"]}],
            "cfg.yaml: merges[0].models[0]: 'S_linear_w1' is made from this recipe's own merges: "
            "a cycle of recipes S → S",
        ),
        (
            [dict(CHAINED[0], models=["A", "gamma"]), dict(CHAINED[1], methods=["ties", "linear"])],
            "cfg.yaml: merges[0].models[0]: recipe 'A' makes 2 merges (A_ties_d0.5_w0.5, A_linear_w1): name one",
        ),
    ],
)
def test_unknown_merges_and_cycles_stop_with_one_line(wd, merges, message):
    with pytest.raises(ConfigError) as err:
        exp(wd, merges)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_hub_parents_of_a_merge_of_merges_reach_its_card(tmp_path):
    cfg = {
        "models": {"base": {"hub": "org/base"}, "a": {"hub": "org/a"}, "b": {"hub": "org/b"}},
        "merges": [
            {"name": "A", "models": ["a", "b"], "base": "base", "methods": ["task_arithmetic"]},
            {"name": "B", "models": ["A", "base"], "methods": ["slerp"], "parameters": {"t": 0.5}},
        ],
    }
    e = load_experiment(cfg, "cfg.yaml", workdir=tmp_path)
    assert e.job("merge", model="B_slerp_t0.5").card["hub_parents"] == ["org/base", "org/a", "org/b"]
    assert yaml.safe_dump(e.lineage("B_slerp_t0.5"))  # a plain tree: it goes into provenance.json


# ---- through the workflow: tensors identical to mergekit's own commands

TIES = """merge_method: ties
base_model: {base}
models:
  - model: {alpha}
    parameters: {{density: 0.5, weight: 0.7}}
  - model: {beta}
    parameters: {{density: 0.7, weight: 0.4}}
parameters: {{int8_mask: true}}
dtype: float32
tokenizer:
  source: base
  tokens:
    <s>: {{source: {beta}}}
    </s>: {{source: {{kind: model_token, model: {alpha}, token: </s>}}}}
"""
WF_CHAIN = """name: ab  # paths, as mergekit-multi needs them
merge_method: linear
models: [{model: models/alpha, parameters: {weight: 1}}, {model: models/beta, parameters: {weight: 3}}]
dtype: float32
---
merge_method: slerp
base_model: ab
models: [{model: ab}, {model: models/base}]
parameters: {t: 0.3}
dtype: float32
"""
A_ID, B_ID = "A_ties_d0.5_w0.5", "B_slerp_t0.5"


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_models):
    import shutil

    from conftest import snakemake, write_config

    wd = tmp_path_factory.mktemp("lineage")
    for n, p in tiny_models.items():
        shutil.copytree(p, wd / "models" / n)
    (wd / "ties-keys.yml").write_text(TIES.format(base="base", alpha="alpha", beta="beta"))
    (wd / "ties-paths.yml").write_text(TIES.format(base="models/base", alpha="models/alpha", beta="./models/beta"))
    (wd / "chain.yml").write_text(WF_CHAIN)
    cfg = {
        "models": models("base", "alpha", "beta"),
        "merges": [
            {"name": "tk", "mergekit_config": "ties-keys.yml"},
            {"name": "tp", "mergekit_config": "ties-paths.yml"},
            {"name": "chain", "mergekit_config": "chain.yml"},
            {"name": "B", "models": ["A", "base"], "methods": ["slerp"], "parameters": {"t": 0.5}, "dtype": "float32"},
            {"name": "A", "models": ["alpha", "beta"], "base": "base", "methods": ["ties"], "dtype": "float32"},
        ],
        "harness": {"tasks": []},
        "holmes": {"activate": False},
    }
    path = write_config(wd, cfg)
    snakemake(wd, path, "merges", check=True, timeout=1200)
    return wd, path


def _mergekit(wd, *args):
    import subprocess
    import sys
    from pathlib import Path

    from conftest import base_env

    tool = Path(sys.executable).parent / args[0]
    # no model card: mergekit's asks the Hub whether "models/base" is a repo
    cmd = [str(tool), *args[1:], "--no-write-model-card"]
    proc = subprocess.run(cmd, cwd=wd, env=base_env(wd), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _same_tensors(a, b):
    import torch

    from conftest import load_state

    sa, sb = load_state(a), load_state(b)
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.workflow
def test_raw_files_merge_as_mergekit_yaml_and_mergekit_multi_do(made):
    wd, _ = made
    _mergekit(wd, "mergekit-yaml", "ties-paths.yml", str(wd / "by-mergekit" / "ties"))
    _same_tensors(wd / "by-mergekit" / "ties", wd / "results" / "models" / "tp")
    _same_tensors(wd / "by-mergekit" / "ties", wd / "results" / "models" / "tk")  # keys, tokenizer block too
    _mergekit(
        wd, "mergekit-multi", "chain.yml", "-I", str(wd / "by-mergekit" / "stages"), "--out-path", "by-mergekit/chain"
    )
    _same_tensors(wd / "by-mergekit" / "stages" / "ab", wd / "results" / "models" / "chain-ab")
    _same_tensors(wd / "by-mergekit" / "chain", wd / "results" / "models" / "chain")
    rows = {r.split("\t")[0]: r.split("\t") for r in (wd / "results" / "merges.tsv").read_text().splitlines()[1:]}
    assert rows["tp"][4] == "models/base,models/alpha,models/beta"
    assert rows["tk"][4] == "base,alpha,beta"
    assert rows["chain"][4] == "chain-ab,models/base" and rows["chain-ab"][4] == "models/alpha,models/beta"


@pytest.mark.workflow
def test_a_merge_of_a_merge_runs_and_names_its_lineage(made):
    wd, _ = made
    b = wd / "results" / "models" / B_ID
    cfg = yaml.safe_load((b / "mergekit_config.yml").read_text())
    assert cfg["base_model"] == str(wd / "results" / "models" / A_ID)
    _mergekit(wd, "mergekit-yaml", str(b / "mergekit_config.yml"), str(wd / "by-mergekit" / "B"))
    _same_tensors(wd / "by-mergekit" / "B", b)
    card = (b / "README.md").read_text()
    lineage = card.split("## Lineage", 1)[1].split("##", 1)[0]
    for name in (B_ID, A_ID, "alpha", "beta", "base"):
        assert f"`{name}`" in lineage, lineage


@pytest.mark.workflow
def test_a_changed_parent_reruns_exactly_the_merges_that_read_it(made):
    """models/base is read by key (tk, A and through it B, the chain's output) and by path (tp);
    the chain's first stage does not read it."""
    import os
    import time

    from conftest import planned_merges, snakemake

    wd, path = made
    later = time.time() + 5
    os.utime(wd / "models" / "base", (later, later))
    proc = snakemake(wd, path, "merges", "-n", check=True)
    assert planned_merges(proc.stdout) == {"tk", "tp", "chain", A_ID, B_ID}


def test_the_tokenizer_source_model_is_an_input(wd):
    """A hub tokenizer source that is not merged must still be fetched and localized."""
    e = exp(wd, [{"name": "t", "models": ["alpha", "beta"], "methods": ["linear"], "tokenizer_source": "gamma"}])
    spec = e.merges["t_linear_w1"]
    assert spec.inputs == ["alpha", "beta", "gamma"] and spec.parents == ["alpha", "beta"]
    assert spec.mergekit_config["tokenizer_source"] == str(wd / "models" / "gamma")
    assert [m["model"] for m in spec.mergekit_config["models"]] == [str(wd / "models" / n) for n in ("alpha", "beta")]
