"""The typed plan between the config and the jobs: named params per job, no absolute path in
what decides a rerun, one registry of figures, sweeps recorded by the expansion."""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import fields, replace

import pytest
import yaml

from conftest import REPO, fake_model_dir, harness_settings
from mergelab.plan import paths
from mergelab.plan.cli import TARGET_OF_RULE, rule_typed_as_target
from mergelab.plan.experiment import load_experiment
from mergelab.plan.figures import FIGURES, figures
from mergelab.plan.jobs import HarnessJob, HarnessSettings, HolmesSettings, MergeJob
from mergelab.plan.load import load_schema, settings_defaults
from mergelab.plan.rules import job_rules


def campaign(wd):
    """The embedded default plus a local model under the working directory, a hub parent with a
    cache folder, and a task folder of the user's: every kind of path a job gets."""
    shutil.copytree(REPO / "config", wd / "config")
    fake_model_dir(wd / "models" / "local")
    (wd / "tasks").mkdir()
    (wd / "tasks" / "hub_t.yaml").write_text("task: hub_t\ndataset_path: org/dataset\n")  # data from the Hub
    cfg = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    cfg["models"]["local"] = {"path": "models/local"}
    cfg["models"]["hubbed"] = {"hub": "org/model", "revision": "abc123"}
    cfg["merges"].append(
        {"name": "extra", "models": ["local", "hubbed"], "base": "base", "methods": ["ties"], "dtype": "float32"}
    )
    cfg["hub"] = {"fetch": {"cache_dir": "hf-cache"}}
    cfg["harness"]["include_path"] = ["tasks"]
    cfg["harness"]["tasks"].append("hub_t")
    cfg["harness"]["data"] = {"cache_dir": "hf-data"}
    cfg["holmes"]["data"] = {"root": "data/holmes", "archive": None}
    cfg["sanity"] = {"activate": True}
    cfg["search"] = [
        {
            "name": "tune",
            "models": ["math", "local"],
            "base": "base",
            "methods": ["ties", "task_arithmetic"],
            "space": {"weight": {"math": [0.1, 1.0], "local": {"low": 0.1, "high": 1.0, "log": True}}},
            "parameters": {"density": 0.5},
            "objective": {"tasks": {"mergelab_arithmetic": 1.0, "hub_t": 0.5}, "competences": {"syntax": 1.0}},
            "trials": 3,
            "parallel": 2,
        }
    ]
    proposals = wd / "results" / "search" / "tune" / "gen0" / "proposals.json"  # as search_propose writes them
    proposals.parent.mkdir(parents=True)
    trials = [
        {"number": 0, "model": "tune_t000", "method": "ties", "values": {"weight.math": 0.3, "weight.local": 0.7}},
        {
            "number": 1,
            "model": "tune_t001",
            "method": "task_arithmetic",
            "values": {"weight.math": 1, "weight.local": 1},
        },
    ]
    proposals.write_text(json.dumps({"search": "tune", "generation": 0, "trials": trials}))
    return load_experiment(cfg, "config/experiment.yaml", workdir=wd)


def every_job(exp):
    """(rule, wildcards) of every job of the campaign."""
    jobs = [("merge", {"model": m}) for m in exp.merges] + [("merges_table", {})]
    jobs += [("harness_eval", {"model": m, "task": t}) for m in exp.harness.models for t in exp.harness.tasks]
    jobs += [("harness_eval_model", {"model": m}) for m in exp.harness.models]  # harness.jobs: per_model
    jobs += [("harness_data", {"task": t}) for t in exp.harness.data_tasks]
    jobs += [("holmes_eval", {"model": m}) for m in exp.holmes.models] + [("holmes_data", {})]
    jobs += [("fetch", {"model": m}) for m, spec in exp.models.items() if spec.kind == "hub"]
    jobs += [("sanity_check", {"model": m}) for m in exp.sanity.checked]
    jobs += [("merge", {"model": "tune_t000"}), ("search_eval", {"search": "tune", "model": "tune_t000"})]
    jobs += [("search_probe", {"search": "tune", "model": "tune_t000"})]
    jobs += [("search_propose", {"search": "tune", "generation": g}) for g in ("0", "1")]
    jobs += [("search_summary", {"search": "tune"}), ("search_plot", {"search": "tune"})]
    return jobs + [("organize", {}), ("plot", {})]


def leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v)
    else:
        yield value


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    return campaign(tmp_path_factory.mktemp("here")), campaign(tmp_path_factory.mktemp("elsewhere"))


def test_params_are_the_same_in_any_folder_and_hold_no_absolute_path(two_folders):
    here, elsewhere = two_folders
    jobs = every_job(here)
    assert {r for r, _ in jobs} == set(job_rules()) - {"push", "push_results"}
    for rule, wildcards in jobs:
        params = here.job_params(rule, **wildcards)
        assert params == elsewhere.job_params(rule, **wildcards), (rule, wildcards)
        absolute = [v for v in leaves(params) if isinstance(v, str) and v.startswith("/")]
        assert not absolute, (rule, wildcards, absolute)
    # a Snakemake input is relative to the working directory too
    assert here.models["local"].input_path == "models/local"


def test_a_job_gets_back_the_spec_the_dag_built(two_folders):
    exp = two_folders[0]
    for rule, wildcards in every_job(exp):
        spec = exp.job(rule, **wildcards)
        back = type(spec).from_params(exp.job_params(rule, **wildcards), workdir=exp.workdir)
        assert back == spec, (rule, wildcards)
    merge = exp.job("merge", model="extra_ties_d0.5_w0.5")
    assert isinstance(merge, MergeJob)
    assert merge.mergekit_config["base_model"] == str(exp.workdir / "results" / "demo" / "base")
    assert merge.hub_receipts == {"org/model@abc123": "results/hub/parents/hubbed.json"}
    job = exp.job("harness_eval", model="math-words_linear_w1", task="mergelab_arithmetic")
    assert isinstance(job, HarnessJob) and job.include_paths == [str(exp.workdir / "tasks")]
    assert job.model_path == str(exp.workdir / "results" / "models" / "math-words_linear_w1")
    assert exp.job_params("fetch", model="hubbed")["cache_dir"] == "{workdir}/hf-cache"


def test_a_payload_key_added_later_is_absent_at_its_default():
    s = HolmesSettings(seeds=[0], objective="reference", batch_size=8, dtype=None, max_length=None)
    assert s.record() == {"batch_size": 8, "dtype": None, "max_length": None, "objective": "reference", "seeds": [0]}
    on = replace(s, features="reference", trust_remote_code=True)
    assert on.record() == {**s.record(), "features": "reference", "trust_remote_code": True}
    assert HolmesSettings.from_record(s.record()) == s and HolmesSettings.from_record(on.record()) == on
    with pytest.raises(TypeError, match="HolmesSettings has no field 'seed'"):
        HolmesSettings.from_record({**s.record(), "seed": 1})
    with pytest.raises(TypeError, match="HarnessSettings lacks 'revision'"):
        HarnessSettings.from_record(settings_defaults(load_schema()))
    # the harness settings: every key of the schema's $defs.settings, and the model's revision
    names = {f.name for f in fields(HarnessSettings)}
    assert names == set(load_schema()["$defs"]["settings"]["properties"]) | {"revision"}


def test_params_list_mappings_in_one_order():
    a = HarnessJob("m", "p", None, "t", harness_settings(model_args={"y": 2, "x": 1}), [], False).params("/w")
    b = HarnessJob("m", "p", None, "t", harness_settings(model_args={"x": 1, "y": 2}), [], False).params("/w")
    assert repr(a) == repr(b)  # what Snakemake compares to decide a rerun
    assert list(a["settings"]) == sorted(a["settings"]) and list(a["settings"]["model_args"]) == ["x", "y"]


def test_jobs_outside_the_config_are_refused(two_folders):
    exp = two_folders[0]
    with pytest.raises(ValueError, match="not a merge of this config"):
        exp.job("merge", model="base")
    with pytest.raises(ValueError, match="not an evaluation of this config"):
        exp.job("harness_eval", model="base", task="gsm8k")
    with pytest.raises(ValueError, match="not a hub model"):
        exp.job("fetch", model="base")


# rules (and checkpoints) may be indented (harness.smk defines harness_eval or harness_eval_model as harness.jobs says)
RULE_BLOCK = re.compile(
    r"^[ \t]*(?:rule|checkpoint) (\w+):\n(.*?)(?=^[ \t]*(?:rule|checkpoint) |^[ \t]*use rule |^else:|\Z)", re.M | re.S
)
PARAM = re.compile(r"^\s+(\w+)=job_param\(\"(\w+)\", \"(\w+)\"\)", re.M)


def test_every_job_rule_names_each_field_of_its_spec():
    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    named = {}
    for rule, body in RULE_BLOCK.findall(text):
        for key, spec_rule, field in PARAM.findall(body):
            assert key == field and spec_rule == rule, (rule, key, spec_rule, field)
            named.setdefault(rule, []).append(key)
    assert set(named) == set(job_rules())
    for rule, entry in job_rules().items():
        spec = entry.spec
        assert named[rule] == spec.names(), f"rule {rule}: params {named[rule]} != {spec.__name__} fields"


def test_every_figure_is_one_registry_entry_with_its_caption(two_folders):
    exp = two_folders[0]
    figs = figures(exp)
    assert [f["stem"] for f in figs] == [
        "results/plots/harness/mergelab_arithmetic",
        "results/plots/harness/mergelab_categories",
        "results/plots/harness/mergelab_text_ppl",
        "results/plots/harness/hub_t",
        "results/plots/holmes_competences",
        "results/plots/kendall_tau_competences",
        "results/plots/kendall_tau_datasets",
        "results/plots/merge_vs_parents",
        "results/plots/merge_outcomes",
        "results/plots/normalised_scores",
        "results/plots/sweep/math-words",
    ]
    # and one figure per search, drawn by rule search_plot from its trials.csv
    assert exp.targets("plots") == [f"{f['stem']}.png" for f in figs] + ["results/plots/search/tune.png"]
    for fig in FIGURES.values():
        assert (REPO / "workflow" / "report" / f"{fig.caption}.rst").is_file(), fig.caption
        assert fig.stem.startswith(paths.PLOTS + "/")


def test_the_expansion_records_what_a_recipe_sweeps(tmp_path):
    for n in ("base", "a", "b"):
        fake_model_dir(tmp_path / n)
    cfg = {
        "models": {n: {"path": n} for n in ("base", "a", "b")},
        "merges": [
            {
                "name": "r1",
                "models": ["a", "b"],
                "base": "base",
                "methods": ["ties", "slerp"],
                "method_parameters": {"ties": {"density": [0.2, 0.4]}, "slerp": {"t": [0.3, 0.6]}},
            },
            {
                "name": "r2",
                "models": ["a", "b"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "parameters": {"weight": {"a": [0.5, 1.0], "b": 0.5}},
            },
            {"name": "r3", "models": ["a", "b"], "base": "base", "methods": ["dare_ties"], "seeds": [0, 1]},
            {
                "name": "r4",
                "models": ["a", "b"],
                "base": "base",
                "methods": ["moe"],
                "moe": {"gate_mode": ["random", "uniform_random"]},
            },
        ],
    }
    exp = load_experiment(cfg, "cfg.yaml", workdir=tmp_path)
    assert exp.merges["r1_ties_d0.2_w0.5"].swept == ("density",)
    assert exp.merges["r1_slerp_t0.3"].swept == ("t",)
    # a recipe's sweep figure plots its first sweeping method's parameter; seeds are not a sweep
    assert exp.sweeps == {"r1": "density", "r2": "weight", "r4": "gate_mode"}


def test_a_rule_typed_as_a_target_names_the_target():
    snakemake = str(REPO / ".venv" / "bin" / "snakemake")
    assert TARGET_OF_RULE["merge"] == "merges" and TARGET_OF_RULE["push"] == "pushes"
    msg = rule_typed_as_target([snakemake, "merge", "--cores", "2"])
    assert msg.startswith("`merge` is the rule that makes one file per model") and "`merges`" in msg
    assert "`evaluations`" in rule_typed_as_target([snakemake, "--cores", "2", "holmes_eval"])
    assert rule_typed_as_target([snakemake, "merges", "--forcerun", "merge"]) is None  # a rule name as a value
    assert rule_typed_as_target([snakemake, "--cores", "2", "--set-threads", "merge=2"]) is None
    assert rule_typed_as_target([sys.executable, "-m", "pytest", "merge"]) is None  # not snakemake's command line
    job = [snakemake, "--target-jobs", "merge:model=x", "--allowed-rules", "merge", "--mode", "remote"]
    assert rule_typed_as_target(job) is None  # a cluster job's own snakemake
