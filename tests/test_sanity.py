"""The sanity check of a merge (issue 17): mergelab.evaluate.sanity.check_model on tiny models doctored
to be broken (a NaN tensor, a truncated embedding, a collapsed model), and a healthy one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import load_state
from mergelab.plan.figures import result_files


def doctored(src: Path, dest: Path, change) -> Path:
    """A copy of model ``src`` whose weights ``change(state)`` edits in place."""
    from safetensors.torch import save_file

    shutil.copytree(src, dest)
    state = load_state(dest)
    change(state)
    for f in dest.glob("*.safetensors"):
        f.unlink()
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


@pytest.fixture(scope="module")
def parent_checks(tiny_models):
    from mergelab.evaluate.sanity import check_model

    out = []
    for name in ("alpha", "beta"):
        c = check_model(str(tiny_models[name]))
        c["model"] = name
        out.append(c)
    return out


def _first(state, suffix):
    return next(k for k in state if k.endswith(suffix))


def test_healthy_model_passes(tiny_models, parent_checks):
    from mergelab.evaluate.sanity import check_model

    for c in parent_checks:
        assert c["status"] == "ok", c["reasons"]
        assert c["perplexity"] > 0 and c["checks"]["forward"] == "finite"
        assert c["checks"]["generated_tokens"] >= 1
    c = check_model(str(tiny_models["base"]), parent_checks)
    assert c["status"] == "ok" and c["reasons"] == []


def test_nan_tensor_is_caught(tiny_models, parent_checks, tmp_path):
    from mergelab.evaluate.sanity import check_model

    def change(state):
        k = _first(state, "mlp.down_proj.weight")
        state[k][0, 0] = float("nan")

    d = doctored(tiny_models["alpha"], tmp_path / "nan", change)
    c = check_model(str(d), parent_checks)
    assert c["status"] == "broken"
    assert c["reasons"][0].startswith("non-finite weights (NaN/Inf) in 1 tensor(s): ")
    assert "mlp.down_proj.weight" in c["reasons"][0]


def test_truncated_embedding_is_caught(tiny_models, parent_checks, tmp_path):
    from mergelab.evaluate.sanity import check_model

    def change(state):
        for k in list(state):
            if k.endswith(("embed_tokens.weight", "lm_head.weight")):
                state[k] = state[k][:-10].clone()

    d = doctored(tiny_models["alpha"], tmp_path / "short", change)
    c = check_model(str(d), parent_checks)
    assert c["status"] == "broken"
    assert any(r.startswith("embedding too small: model.embed_tokens.weight has ") for r in c["reasons"]), c
    assert "the tokenizer" in c["reasons"][0]


def test_collapsed_model_is_caught(tiny_models, parent_checks, tmp_path):
    from mergelab.evaluate.sanity import check_model

    def change(state):  # a parent scaled by a huge factor: finite weights, exploding perplexity
        for k in state:
            if k.endswith(("embed_tokens.weight", "lm_head.weight")):
                state[k] = state[k] * 1000.0

    d = doctored(tiny_models["alpha"], tmp_path / "collapsed", change)
    c = check_model(str(d), parent_checks, max_ppl_ratio=10)
    assert c["status"] == "broken", c
    assert c["reasons"][0].startswith("perplexity exploded: "), c["reasons"]
    assert "x the worst parent's" in c["reasons"][0]


def test_lost_chat_template_is_caught(tiny_models, parent_checks, tmp_path):
    from mergelab.evaluate.sanity import check_model

    parent = dict(parent_checks[0], checks=dict(parent_checks[0]["checks"], chat_template=True))
    c = check_model(str(tiny_models["base"]), [parent])
    assert c["checks"]["chat_template"] is False  # the tiny models have none
    assert c["status"] == "broken"
    assert c["reasons"] == ["chat template lost (parent alpha has one)"]


def _default_campaign(wd, **sanity):
    import yaml

    from conftest import REPO
    from mergelab.plan.experiment import load_experiment

    shutil.copytree(REPO / "config", wd / "config")
    cfg = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    if sanity:
        cfg["sanity"] = sanity
    return load_experiment(cfg, "config/experiment.yaml", workdir=wd)


def test_off_by_default_so_a_finished_campaign_keeps_its_inputs_and_params(tmp_path):
    """sanity.activate is off by default: no check job, no new input of any evaluation job, and
    the organize job's params as before (a finished campaign reruns nothing after an upgrade)."""
    exp = _default_campaign(tmp_path, on_fail="skip")  # as an older config: no activate key
    assert exp.config["sanity"] == {"activate": False, "on_fail": "skip", "max_ppl_ratio": 10}
    assert exp.sanity.checked == () and all(exp.sanity.check_input(m) == [] for m in exp.merges)
    assert "checks" not in result_files(exp)


def test_on_every_merge_checks_it_and_what_it_reads(tmp_path):
    from mergelab.plan.paths import CHECK

    exp = _default_campaign(tmp_path, activate=True, on_fail="stop")
    assert set(exp.merges) <= set(exp.sanity.checked)
    assert {"base", "math", "words"} <= set(exp.sanity.checked)  # the merges' references, checked once each
    m = next(iter(exp.merges))
    assert exp.sanity.check_input(m) == [CHECK.format(model=m)] and exp.sanity.check_input("base") == []
    job = exp.job("sanity_check", model=m)
    assert job.on_fail == "stop" and job.max_ppl_ratio == 10.0
    assert job.parents == [CHECK.format(model=i) for i in exp.merges[m].inputs]
    assert exp.job("sanity_check", model="base").parents == []
    assert result_files(exp)["checks"][m] == CHECK.format(model=m)


def test_holmes_and_the_check_load_the_model_as_the_harness_does(tmp_path, monkeypatch, tiny_models):
    """Issue 27: harness.settings.trust_remote_code (per model through model_settings) reaches the
    sanity check and Holmes too; off, their params are what campaigns before it recorded."""
    from mergelab.plan.jobs import Unrecorded

    exp = _default_campaign(tmp_path / "off", activate=True)
    m = next(iter(exp.merges))
    assert exp.job("sanity_check", model=m).trust_remote_code is False
    assert exp.job_params("sanity_check", model=m)["trust_remote_code"] == Unrecorded(False)  # not recorded
    assert exp.job("holmes_eval", model=m).settings.trust_remote_code is False
    assert "trust_remote_code" not in exp.job_params("holmes_eval", model=m)["settings"]  # as before the key

    exp = _default_campaign(tmp_path / "on", activate=True)
    cfg = dict(exp.config, harness=dict(exp.config["harness"], model_settings={m: {"trust_remote_code": True}}))
    from mergelab.plan.experiment import load_experiment

    exp = load_experiment(cfg, "config/experiment.yaml", workdir=tmp_path / "on")
    assert exp.job("sanity_check", model=m).trust_remote_code is True
    assert exp.job_params("sanity_check", model=m)["trust_remote_code"] is True  # recorded: the check reruns
    assert exp.job("holmes_eval", model=m).settings.trust_remote_code is True
    assert exp.job_params("holmes_eval", model=m)["settings"]["trust_remote_code"] is True
    assert exp.job("sanity_check", model="base").trust_remote_code is False  # model_settings: that merge only

    import transformers

    from mergelab.evaluate.sanity import check_model

    seen = []
    real = transformers.AutoTokenizer.from_pretrained

    def tokenizer(path, **kw):
        seen.append(kw.get("trust_remote_code"))
        return real(path, **kw)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
    assert check_model(str(tiny_models["base"]), trust_remote_code=True)["status"] == "ok"
    assert seen == [True]
