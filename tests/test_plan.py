"""The typed plan between the config and the jobs: named params per job, no absolute path in
what decides a rerun, typed settings that travel as the plain mappings they always were, one
registry of figures, sweeps recorded by the expansion."""

from __future__ import annotations

import copy
import fnmatch
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
from mergelab.plan.jobs import Catalogue, HarnessJob, HarnessSettings, HolmesSettings, MergeJob, Unrecorded
from mergelab.plan.load import load_schema, read_config_file, settings_defaults
from mergelab.plan.rules import job_rules


def campaign(wd, tweak=lambda cfg: None):
    """The embedded default plus a local model under the working directory, a hub parent with a
    cache folder, and a task folder of the user's: every kind of path a job gets. ``tweak`` changes
    the config before it is loaded."""
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
    tweak(cfg)
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
    for s, plan in exp.searches.items():  # a search's trials: those proposed so far
        proposed = [t for t in plan.trial_ids if (exp.workdir / exp.proposals_file(t)).is_file()]
        jobs += [("merge", {"model": t}) for t in proposed]
        jobs += [("search_eval", {"search": s, "model": t}) for t in proposed if plan.tasks]
        jobs += [("search_probe", {"search": s, "model": t}) for t in proposed if plan.competences]
        jobs += [("search_propose", {"search": s, "generation": str(g)}) for g in range(plan.generations)]
        jobs += [("search_summary", {"search": s}), ("search_plot", {"search": s})]
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


# ---------------------------------------------------------------- typed settings, plain params (issue 27)


def default_campaign(wd):
    """The embedded default as it is, its search's first generation proposed and trial 1 its best
    (evaluated like any merge: in the catalogue, on the full tasks, by Holmes)."""
    shutil.copytree(REPO / "config", wd / "config")
    search = wd / "results" / "search" / "tune"
    (search / "gen0").mkdir(parents=True)
    trials = [
        {"number": n, "model": f"tune_t00{n}", "method": m, "values": {"weight.math": 0.5, "weight.words": 1.0}}
        for n, m in ((0, "ties"), (1, "task_arithmetic"))
    ]
    (search / "gen0" / "proposals.json").write_text(json.dumps({"search": "tune", "generation": 0, "trials": trials}))
    (search / "best.yaml").write_text(yaml.safe_dump({"search": "tune", "best": [{"trial": 1, "model": "tune_t001"}]}))
    return load_experiment(read_config_file(wd / "config" / "experiment.yaml"), "config/experiment.yaml", workdir=wd)


def variant(cfg):
    """Every settings key that is absent from the params at its default, set; settings per model
    and per task, mappings merged key by key."""
    cfg["holmes"].update(features="reference", dtype="bfloat16", max_length=64, seeds=[3, 1])
    cfg["harness"]["model_settings"] = {
        "math-words_ties*": {"trust_remote_code": True, "model_args": {"b": 1, "a": "x"}},
        "local": {"batch_size": 4, "seeds": {"numpy": 3}},
    }
    task = {"num_fewshot": 2, "gen_kwargs": {"temperature": 0}, "model_args": {"z": 1}, "seeds": {"torch": 5}}
    cfg["harness"]["task_settings"] = {"mergelab_arithmetic": task}


@pytest.fixture(scope="module", params=["default", "campaign", "variant"])
def planned(request, tmp_path_factory):
    wd = tmp_path_factory.mktemp(request.param)
    if request.param == "default":
        return default_campaign(wd)
    return campaign(wd, variant if request.param == "variant" else lambda cfg: None)


SETTINGS_DEFAULTS = settings_defaults(load_schema())


def resolved_harness(exp, model: str, task: str) -> dict:
    """The harness settings param of (model, task) as it always was, resolved here on its own:
    the schema's defaults, harness.settings, every model_settings pattern the model matches, the
    task's task_settings (seeds and model_args merged key by key); dtype, else the model's own; the
    model's revision. Every key of the schema's $defs.settings, and revision."""
    h = exp.config["harness"]
    s = copy.deepcopy(SETTINGS_DEFAULTS)
    layers = [h["settings"]] + [o for pat, o in h["model_settings"].items() if fnmatch.fnmatchcase(model, pat)]
    for layer in layers + [h["task_settings"].get(task, {})]:
        for k, v in layer.items():
            s[k] = {**s[k], **v} if k in ("seeds", "model_args") and isinstance(v, dict) else v
    s["dtype"] = s["dtype"] or exp.harness.model_dtypes.get(model, "auto")
    s["revision"] = exp.models[model].revision if model in exp.models else None
    return s


def resolved_holmes(exp, model: str) -> dict:
    """Holmes' settings param of a model as it always was: seeds, objective, batch_size, dtype
    (holmes.dtype, else the model's own), max_length; features only when not full, and
    trust_remote_code only when the model's harness setting is on."""
    ho = exp.config["holmes"]
    s = {k: ho[k] for k in ("seeds", "objective", "batch_size", "max_length")}
    s["dtype"] = ho["dtype"] or exp.holmes.model_dtypes.get(model, "auto")
    if ho["features"] != "full":
        s["features"] = ho["features"]
    if resolved_harness(exp, model, None)["trust_remote_code"]:
        s["trust_remote_code"] = True
    return s


def plain_and_sorted(value) -> bool:
    """Builtins only (what Snakemake records), every mapping's keys in sorted order."""
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(plain_and_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(plain_and_sorted(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_params_are_the_plain_mappings_they_were_and_come_back_typed(planned):
    """Issue 27: the settings and the catalogue are typed in the plan and in the jobs, but a job's
    params are what they were when they were plain mappings: the same keys (one absent at its
    default stays absent), the same values, sorted, so that a finished campaign plans nothing."""
    exp, seen = planned, set()
    for rule, wildcards in every_job(exp):
        spec, params = exp.job(rule, **wildcards), exp.job_params(rule, **wildcards)
        for name, value in params.items():
            value = value.value if isinstance(value, Unrecorded) else value
            assert plain_and_sorted(value), (rule, wildcards, name, value)
        assert type(spec).from_params(params, workdir=exp.workdir) == spec, (rule, wildcards)
        model, s = wildcards.get("model"), params.get("settings")
        if rule == "harness_eval":
            assert s == resolved_harness(exp, model, wildcards["task"])
            assert isinstance(spec.settings, HarnessSettings) and spec.settings.record() == s
        elif rule in ("harness_eval_model", "search_eval"):
            tasks = spec.tasks
            expected = {t: resolved_harness(exp, model, t) for t in tasks}
            if rule == "search_eval":  # the search's dev subset, no samples
                expected = {
                    t: {**x, "limit": exp.search(wildcards["search"]).limit, "log_samples": False}
                    for t, x in expected.items()
                }
            assert s == expected and list(s) == sorted(tasks)
            assert all(isinstance(x, HarnessSettings) for x in spec.settings.values())
        elif rule in ("holmes_eval", "search_probe"):
            assert s == resolved_holmes(exp, model) and isinstance(spec.settings, HolmesSettings)
        elif rule in ("organize", "plot"):
            check_catalogue(exp, params["catalogue"])
            assert isinstance(spec.catalogue, Catalogue)
        elif rule == "sanity_check":
            trusted = resolved_harness(exp, model, None)["trust_remote_code"]
            assert params["trust_remote_code"] == (True if trusted else Unrecorded(False))
        seen.add(rule)
    assert {"harness_eval", "harness_eval_model", "search_eval", "holmes_eval", "organize", "plot"} <= seen
    assert ("search_probe" in seen) == any(p.competences for p in exp.searches.values())


def check_catalogue(exp, catalogue: dict) -> None:
    """The catalogue param as it always was: its five keys (no broken: the organize job adds that),
    the harness and Holmes settings as the config gives them."""
    h, ho = exp.config["harness"], exp.config["holmes"]
    assert list(catalogue) == ["harness", "holmes", "model_order", "models", "stats"]
    assert catalogue["harness"] == {k: h[k] for k in ("model_settings", "settings", "task_settings", "tasks")}
    holmes = {k: ho[k] for k in ("batch_size", "dtype", "max_length", "objective", "seeds")}
    holmes.update({"features": ho["features"]} if ho["features"] != "full" else {})
    assert catalogue["holmes"] == {
        "active": ho["activate"],
        "datasets": exp.holmes.datasets,
        "settings": holmes,
        "version": ho["version"],
    }
    best = [m for ms in exp.best.values() for m in ms]
    assert catalogue["model_order"] == list(exp.models) + list(exp.merges) + best
    assert sorted(catalogue["models"]) == sorted(catalogue["model_order"])
    assert all(catalogue["models"][m]["search"] == "tune" for m in best)
    assert catalogue["stats"] == exp.config["stats"]


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
