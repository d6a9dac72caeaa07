"""Config validation and expansion: ids, sweeps, defaults, contracts, errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, fake_model_dir, planned_jobs, snakemake, write_config
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment
from mergelab.plan.load import load_schema
from mergelab.plan.merge_jobs import merges_table
from mergelab.plan.methods import METHODS


def exp(cfg, workdir):
    return load_experiment(cfg, "cfg.yaml", workdir=workdir)


def model_dir(root: Path, name: str) -> Path:
    return fake_model_dir(root / name)


@pytest.fixture()
def wd(tmp_path):
    for n in ("base", "coder", "math", "extra"):
        model_dir(tmp_path / "models", n)
    return tmp_path


def models(*names):
    return {n: {"path": f"models/{n}"} for n in names}


def test_default_config_is_valid_and_covers_every_family():
    cfg = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    e = load_experiment(cfg, "config/experiment.yaml", workdir=REPO)
    methods = {m.method for m in e.merges.values()}
    assert {"linear", "slerp", "task_arithmetic", "ties", "dare_ties", "passthrough", "model_stock", "moe"} <= methods
    assert all(m.kind == "demo" for m in e.models.values())


def test_five_methods_work_untuned_with_readable_ids(wd):
    cfg = {
        "models": models("base", "coder", "math"),
        "merges": [
            {
                "name": "coder-math",
                "models": ["coder", "math"],
                "base": "base",
                "methods": ["linear", "slerp", "ties", "dare_ties", "task_arithmetic"],
            }
        ],
    }
    e = exp(cfg, wd)
    assert list(e.merges) == [
        "coder-math_linear_w1",
        "coder-math_slerp_t0.5",
        "coder-math_ties_d0.5_w0.5",
        "coder-math_dare_ties_d0.5_w0.5_s0",
        "coder-math_task_arithmetic_w0.5",
    ]
    ties = e.merges["coder-math_ties_d0.5_w0.5"].mergekit_config
    base = str((wd / "models/base").resolve())
    assert ties["base_model"] == base
    assert [m["model"] for m in ties["models"]] == [str((wd / f"models/{n}").resolve()) for n in ("coder", "math")]
    assert all(m["parameters"] == {"density": 0.5, "weight": 0.5} for m in ties["models"])
    assert ties["dtype"] == "bfloat16"
    # linear ignores the base: it must not become an input
    lin = e.merges["coder-math_linear_w1"].mergekit_config
    assert "base_model" not in lin and len(lin["models"]) == 2
    # slerp interpolates between the two models, the first being its base (t=0)
    sl = e.merges["coder-math_slerp_t0.5"].mergekit_config
    assert sl["base_model"] == sl["models"][0]["model"] == str((wd / "models/coder").resolve())
    assert sl["parameters"] == {"t": 0.5}


def test_sweeps_multiply_and_seeds_only_for_random_methods(wd):
    cfg = {
        "models": models("base", "coder", "math"),
        "merges": [
            {
                "name": "cm",
                "models": ["coder", "math"],
                "base": "base",
                "methods": ["ties", "dare_linear"],
                "parameters": {"density": [0.3, 0.7], "weight": {"coder": [0.2, 0.8], "math": 0.5}},
                "seeds": [0, 7],
            }
        ],
    }
    e = exp(cfg, wd)
    ties = [i for i in e.merges if "_ties_" in i]
    dare = [i for i in e.merges if "_dare_linear_" in i]
    assert len(ties) == 4 and len(dare) == 8
    assert "cm_ties_d0.3_w0.2-0.5" in ties
    assert "cm_dare_linear_d0.7_w0.8-0.5_s7" in dare
    spec = e.merges["cm_ties_d0.3_w0.2-0.5"]
    per = {Path(m["model"]).name: m["parameters"] for m in spec.mergekit_config["models"]}
    assert per == {"coder": {"density": 0.3, "weight": 0.2}, "math": {"density": 0.3, "weight": 0.5}}
    assert spec.seed == 0
    assert spec.params == {"density": 0.3, "weight": {"coder": 0.2, "math": 0.5}}


def test_method_parameters_override_and_ids_are_stable(wd):
    cfg = {
        "models": models("base", "coder", "math"),
        "merges": [
            {
                "name": "cm",
                "models": ["coder", "math"],
                "base": "base",
                "methods": ["slerp", "ties"],
                "parameters": {"weight": 0.7},
                "method_parameters": {"slerp": {"t": [0, 1]}, "ties": {"density": 0.25}},
            }
        ],
    }
    ids = list(exp(cfg, wd).merges)
    assert ids == ["cm_slerp_t0", "cm_slerp_t1", "cm_ties_d0.25_w0.7"]
    assert list(exp(cfg, wd).merges) == ids  # deterministic


def test_equal_per_model_values_give_the_scalar_id(wd):
    a = {
        "models": models("base", "coder", "math"),
        "merges": [
            {
                "name": "cm",
                "models": ["coder", "math"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "parameters": {"weight": {"coder": 0.5, "math": 0.5}},
            }
        ],
    }
    assert list(exp(a, wd).merges) == ["cm_task_arithmetic_w0.5"]


def test_raw_mergekit_file_substitutes_model_keys(wd):
    raw = wd / "frank.yml"
    raw.write_text(
        yaml.safe_dump(
            {
                "merge_method": "passthrough",
                "dtype": "float16",
                "slices": [
                    {"sources": [{"model": "coder", "layer_range": [0, 2]}]},
                    {"sources": [{"model": "math", "layer_range": [2, 4]}]},
                ],
            }
        )
    )
    cfg = {"models": models("coder", "math"), "merges": [{"name": "frank", "mergekit_config": "frank.yml"}]}
    e = exp(cfg, wd)
    spec = e.merges["frank"]
    assert spec.inputs == ["coder", "math"] and spec.raw_file == str(raw)
    srcs = [s["sources"][0]["model"] for s in spec.mergekit_config["slices"]]
    assert srcs == [str((wd / "models/coder").resolve()), str((wd / "models/math").resolve())]
    assert spec.mergekit_config["dtype"] == "float16"  # the file's own settings win


def test_hub_models_pass_revision_to_mergekit(wd):
    cfg = {
        "models": {"b": {"hub": "Qwen/Qwen2.5-7B", "revision": "abc123"}, "c": {"hub": "Qwen/Qwen2.5-Coder-7B"}},
        "merges": [{"name": "bc", "models": ["c"], "base": "b", "methods": ["task_arithmetic"]}],
    }
    spec = exp(cfg, wd).merges["bc_task_arithmetic_w0.5"]
    assert spec.mergekit_config["base_model"] == "Qwen/Qwen2.5-7B@abc123"
    assert spec.mergekit_config["models"] == [{"model": "Qwen/Qwen2.5-Coder-7B", "parameters": {"weight": 0.5}}]


def test_merges_table_lists_every_merge_with_its_config(wd):
    cfg = {
        "models": models("base", "coder", "math"),
        "merges": [
            {
                "name": "cm",
                "models": ["coder", "math"],
                "base": "base",
                "methods": ["ties", "dare_ties"],
                "seeds": [1, 2],
            }
        ],
    }
    e = exp(cfg, wd)
    rows = list(csv.DictReader(io.StringIO(merges_table(e)), delimiter="\t"))
    assert [r["model"] for r in rows] == list(e.merges)
    for r in rows:
        spec = e.merges[r["model"]]
        assert json.loads(r["mergekit_config"]) == spec.mergekit_config
        assert int(r["seed"]) == spec.seed
    assert [r["seed"] for r in rows] == ["1", "1", "2"]


def test_schema_is_strict_and_documented():
    schema = load_schema()
    enum = schema["properties"]["merges"]["items"]["properties"]["methods"]["items"]["enum"]
    assert sorted(enum) == sorted([*METHODS, "moe"])  # moe: mergekit-moe, not a merge_method

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                if "properties" in node:
                    assert node.get("additionalProperties") is False, f"{path} is open"
                for key, sub in node.get("properties", {}).items():
                    assert sub.get("description"), f"{path}.{key} has no description"
                    assert "default" in sub, f"{path}.{key} has no default"
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, path)

    walk(schema, "")


# ------------------------------------------------------------------ bad input

GOOD_RECIPE = {"name": "cm", "models": ["coder", "math"], "base": "base", "methods": ["ties"]}


def recipe(**kw):
    r = dict(GOOD_RECIPE)
    r.update(kw)
    return r


BAD = {
    "unknown-model": ({"merges": [recipe(models=["coder", "maths"])]}, "merges[0].models[1]", "unknown model 'maths'"),
    "unknown-method": ({"merges": [recipe(methods=["ties", "tie"])]}, "merges[0].methods[1]", "'tie' is not one of"),
    "slerp-three-models": (
        {"merges": [recipe(models=["coder", "math", "extra"], base=None, methods=["slerp"])]},
        "merges[0].models",
        "slerp merges exactly 2 models",
    ),
    "ties-without-base": ({"merges": [recipe(base=None)]}, "merges[0].base", "ties needs a base model"),
    "missing-required-parameter": (
        {"merges": [recipe(parameters={"weight": {"coder": 0.5}})]},
        "merges[0].parameters.weight",
        "no value for model 'math'",
    ),
    "unknown-parameter": (
        {"merges": [recipe(method_parameters={"ties": {"t": 0.5}})]},
        "merges[0].method_parameters.ties.t",
        "unknown parameter for ties",
    ),
    "unknown-shared-parameter": (
        {"merges": [recipe(parameters={"densty": 0.5})]},
        "merges[0].parameters.densty",
        "did you mean density",
    ),
    "negative-density": (
        {"merges": [recipe(parameters={"density": [0.5, -0.5]})]},
        "merges[0].parameters.density",
        "density must be > 0",
    ),
    "empty-sweep": ({"merges": [recipe(parameters={"weight": []})]}, "merges[0].parameters.weight", "empty sweep"),
    "duplicate-merge-name": (
        {"merges": [recipe(), recipe(methods=["linear"])]},
        "merges[1].name",
        "duplicate merge name 'cm'",
    ),
    "missing-model-path": (
        {"models": {"ghost": {"path": "models/ghost"}}},
        "models.ghost.path",
        "model directory does not exist",
    ),
    "raw-file-does-not-parse": (
        {"merges": [{"name": "frank", "mergekit_config": "broken.yml"}]},
        "merges[0].mergekit_config",
        "not valid YAML",
    ),
    "bad-dtype": ({"merges": [recipe(dtype="float8")]}, "merges[0].dtype", "'float8' is not one of"),
    "unknown-top-level-key": ({"merge": []}, "merge", "unknown key 'merge'"),
    "della-epsilon-too-large": (
        {"merges": [recipe(methods=["della"], parameters={"density": 0.9, "epsilon": 0.2})]},
        "merges[0].parameters",
        "density ± epsilon must lie in (0, 1)",
    ),
    "linear-of-one-model": (
        {"merges": [recipe(models=["coder"], methods=["linear"])]},
        "merges[0].models",
        "linear of one model returns that model unchanged",
    ),
    "multislerp-of-one-model-over-a-base": (
        {"merges": [recipe(models=["coder"], methods=["multislerp"])]},
        "merges[0].models",
        "give at least two models besides the base",
    ),
    "model-stock-two-inputs": (
        {"merges": [recipe(models=["coder"], methods=["model_stock"])]},
        "merges[0].models",
        "model_stock needs at least 3",
    ),
    "revision-on-local-path": (
        {"models": {"x": {"path": "models/coder", "revision": "main"}}},
        "models.x.revision",
        "pins a hub model",
    ),
    "two-sources": (
        {"models": {"x": {"path": "models/coder", "hub": "a/b"}}},
        "models.x",
        "exactly one of path, hub, demo",
    ),
    "sweep-repeats-a-value": (
        {"merges": [recipe(parameters={"weight": [0.5, 0.5]})]},
        "merges[0].parameters.weight",
        "lists 0.5 twice",
    ),
    "not-a-model-dir": ({"models": {"x": {"path": "notamodel"}}}, "models.x.path", "no config.json"),
    "task-settings-for-unlisted-task": (
        {"harness": {"tasks": ["mergelab_categories"], "task_settings": {"mergelab_arithmetic": {"num_fewshot": 1}}}},
        "harness.task_settings.mergelab_arithmetic",
        "is not in harness.tasks",
    ),
    "bad-batch-size": (
        {"harness": {"tasks": ["mergelab_categories"], "settings": {"batch_size": "big"}}},
        "harness.settings.batch_size",
        "not a number, auto or auto:N",
    ),
    "unknown-harness-setting": (
        {"harness": {"tasks": ["mergelab_categories"], "settings": {"fewshot": 3}}},
        "harness.settings.fewshot",
        "did you mean num_fewshot",
    ),
    "evaluation-model-matches-nothing": (
        {"evaluation": {"models": ["coder", "cm_lin*"]}, "harness": {"tasks": ["mergelab_categories"]}},
        "evaluation.models[1]",
        "'cm_lin*' matches no model",
    ),
    "quantized-vllm": (
        {"harness": {"tasks": ["mergelab_categories"], "settings": {"backend": "vllm", "quantization": "4bit"}}},
        "harness.settings.quantization",
        "applies to backend hf",
    ),
    "log-samples-per-model": (
        {"harness": {"tasks": ["mergelab_categories"], "model_settings": {"coder": {"log_samples": True}}}},
        "harness.model_settings.coder.log_samples",
        "per task",
    ),
    "bad-dtype-setting": (
        {"harness": {"tasks": ["mergelab_categories"], "settings": {"dtype": "fp8"}}},
        "harness.settings.dtype",
        "'fp8' is not one of",
    ),
    "unknown-holmes-dataset": (
        {"holmes": {"activate": True, "version": "flash-holmes", "datasets": ["coref", "negation-scop*"]}},
        "holmes.datasets[1]",
        "'negation-scop*' matches no flash-holmes dataset",
    ),
    "missing-holmes-archive": (
        {"holmes": {"activate": True, "data": {"archive": "nowhere.zip"}}},
        "holmes.data.archive",
        "file not found: nowhere.zip",
    ),
    "holmes-version-without-data": (  # issue 16: a version of one's own is allowed, but its data must be somewhere
        {"holmes": {"activate": True, "version": "holmes2"}},
        "holmes.version",
        "'holmes2' is not a built-in version (flash-holmes, holmes, demo) and no datasets of it are in "
        "data/holmes/holmes2/ (<dataset>/config-none.yaml + samples.csv), data/holmes/holmes2.zip or holmes.data.url"
        "; did you mean holmes, flash-holmes?",
    ),
    "holmes-version-not-a-folder-name": ({"holmes": {"version": "../peer"}}, "holmes.version", "does not match"),
    "holmes-own-archive-not-a-zip": (
        {"holmes": {"activate": True, "version": "ours", "data": {"archive": "broken.yml"}}},
        "holmes.data.archive",
        "broken.yml: not a zip archive",
    ),
    "holmes-own-dataset-pattern": (
        {"holmes": {"activate": True, "version": "peer", "datasets": ["peer-a", "peer-x*"]}},
        "holmes.datasets[1]",
        "'peer-x*' matches no peer dataset",
    ),
    "holmes-probes-not-found": (
        {"holmes": {"activate": True, "version": "demo", "data": {"probes": "nowhere.csv"}}},
        "holmes.data.probes",
        "file not found: nowhere.csv",
    ),
    "holmes-probes-columns": (
        {"holmes": {"activate": True, "version": "demo", "data": {"probes": "probes.csv"}}},
        "holmes.data.probes",
        "probes.csv: missing column(s) phenomenon (as in workflow/holmes/probes.csv)",
    ),
    "push-without-namespace": ({"hub": {"push": {"activate": True}}}, "hub.push.namespace", "set the user"),
    "push-bad-repo-name": (
        {"hub": {"push": {"activate": True, "namespace": "me", "repo_name": "{model}/x"}}},
        "hub.push.repo_name",
        "is not a valid Hub repository name",
    ),
    "push-unknown-placeholder": (
        {"hub": {"push": {"activate": True, "namespace": "me", "repo_name": "{seed}"}}},
        "hub.push.repo_name",
        "use only {model}, {recipe}, {method}",
    ),
    "hub-bad-model-id": ({"models": {"x": {"hub": "not a repo"}}}, "models.x.hub", "is not a Hub model id"),
    "old-demo-name": (
        {"models": {"x": {"demo": "alpha"}}},
        "models.x.demo",
        "'alpha' is not one of: base, math, words",
    ),
}


def bad_config(case, wd):
    extra, _, _ = BAD[case]
    cfg = {"models": models("base", "coder", "math", "extra"), "merges": [recipe()]}
    cfg.update(extra)
    if "models" in extra:
        cfg["models"] = {**models("base", "coder", "math", "extra"), **extra["models"]}
    (wd / "broken.yml").write_text("merge_method: linear\nmodels: [\n  - {model: a\n")
    (wd / "notamodel").mkdir(exist_ok=True)
    (wd / "probes.csv").write_text("probing_dataset,competence\npeer-a,syntax\n")
    (wd / "data" / "holmes" / "peer" / "peer-a").mkdir(parents=True, exist_ok=True)  # a version of the user's own
    (wd / "data" / "holmes" / "peer" / "peer-a" / "samples.csv").write_text("id,inputs,label,set-0\n")
    return cfg


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_clear_error(case, wd):
    cfg = bad_config(case, wd)
    _, key, text = BAD[case]
    with pytest.raises(ConfigError) as err:
        exp(cfg, wd)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"cfg.yaml: {key}: "), msg
    assert text in msg, msg


@pytest.mark.workflow
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_stops_snakemake_before_any_job(case, wd):
    cfg = bad_config(case, wd)
    _, key, text = BAD[case]
    path = write_config(wd, cfg)
    proc = snakemake(wd, path)
    assert proc.returncode != 0
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err_lines[-1].startswith("mergelab: ") and key in err_lines[-1] and text in err_lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert not (wd / "results").exists() and not (wd / "logs").exists()


def test_example_campaign_expands_as_documented(tmp_path):
    cfg = yaml.safe_load((REPO / "config/examples/qwen2.5-7b-coder-math.yaml").read_text())
    e = load_experiment(cfg, "qwen.yaml", workdir=tmp_path)
    ids = list(e.merges)
    assert "coder-math_linear_w1" in ids and "coder-math_task_arithmetic_w0.5" in ids
    assert {f"coder-math_slerp_t{t}" for t in (0.3, 0.5, 0.7)} <= set(ids)
    assert {f"coder-math_dare_ties_d{d}_w0.5_s{s}" for d in (0.3, 0.5, 0.7) for s in (0, 1)} <= set(ids)
    assert len(ids) == 1 + 3 + 3 + 6 + 1
    spec = e.merges["coder-math_ties_d0.5_w0.5"]
    assert spec.mergekit_config["base_model"] == "Qwen/Qwen2.5-7B"
    assert spec.mergekit_config["tokenizer_source"] == "base"


@pytest.mark.workflow
def test_broken_default_config_names_file_and_line(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "experiment.yaml").write_text("models:\n  a: {path: x\nmerges: []\n")
    proc = snakemake(tmp_path, None, "-n")
    assert proc.returncode != 0
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("mergelab: config/experiment.yaml: not valid YAML (line 3, column 7)")
    ), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.workflow
def test_command_line_config_overrides_the_default(tmp_path):
    import shutil

    shutil.copytree(REPO / "config", tmp_path / "config")
    proc = snakemake(tmp_path, None, "-n", "--config", "merges=[]", "harness={tasks: []}", "holmes={activate: false}")
    assert proc.returncode == 0, proc.stderr
    assert "rule merge:" not in proc.stdout and "rule demo_models:" not in proc.stdout
    # what --config leaves alone stays the default's (it is merged into it, not put in its place)
    proc = snakemake(tmp_path, None, "-n", "--config", "holmes={activate: false}", "harness={jobs: per_task}")
    assert proc.returncode == 0, proc.stderr
    jobs = planned_jobs(proc.stdout)
    assert "holmes_eval" not in jobs and "harness_eval_model" not in jobs
    assert len(jobs["merge"]) == 10 and len(jobs["harness_eval"]) == 39, {k: len(v) for k, v in jobs.items()}


def test_harness_settings_resolve_per_model_and_task(wd):
    cfg = {
        "models": {**models("base", "coder", "math"), "big": {"path": "models/extra", "dtype": "bfloat16", "gpus": 2}},
        "merges": [recipe(methods=["ties", "dare_ties"], dtype="float16", gpus=0)],
        "harness": {
            "tasks": ["mergelab_categories", "mergelab_arithmetic"],
            "settings": {"batch_size": 32, "seeds": {"fewshot": 7}},
            "model_settings": {"cm_dare*": {"batch_size": 4}},
            "task_settings": {"mergelab_arithmetic": {"num_fewshot": 3, "log_samples": True}},
        },
    }
    e = exp(cfg, wd)
    h = e.harness
    assert h.models == ["base", "coder", "math", "big", "cm_ties_d0.5_w0.5", "cm_dare_ties_d0.5_w0.5_s0"]
    s = h.settings_for("cm_dare_ties_d0.5_w0.5_s0", "mergelab_arithmetic")
    assert s.batch_size == 4 and s.num_fewshot == 3 and s.dtype == "float16" and s.log_samples
    assert s.seeds == {"random": 0, "numpy": 1234, "torch": 1234, "fewshot": 7}
    s = h.settings_for("big", "mergelab_categories")
    assert s.batch_size == 32 and s.num_fewshot is None and s.dtype == "bfloat16" and not s.log_samples
    assert h.samples_tasks == ["mergelab_arithmetic"]
    assert e.gpus("big") == 2 and e.gpus("cm_ties_d0.5_w0.5") == 0 and e.gpus("base") is None  # None: estimate
    assert e.model_input("cm_ties_d0.5_w0.5") == ["results/models/cm_ties_d0.5_w0.5"]
    assert h.is_local("mergelab_categories")


def test_recipe_names_and_evaluated_models_select(wd):
    cfg = {
        "models": models("base", "coder", "math"),
        "merges": [recipe(methods=["ties", "linear"])],
        "evaluation": {"models": ["cm", "base"]},
        "harness": {"tasks": ["mergelab_demo"]},
    }
    assert exp(cfg, wd).harness.models == ["base", "cm_ties_d0.5_w0.5", "cm_linear_w1"]


def test_builtin_tasks_are_checked_against_lm_evals_index(wd):
    cfg = {"models": models("base"), "harness": {"tasks": ["gsm8k", "mergelab_categories"]}}
    calls = []

    def index():
        calls.append(1)
        return {"gsm8k": "task", "mmlu": "group"}

    e = load_experiment(cfg, "cfg.yaml", workdir=wd, lm_eval_tasks=index)
    assert not e.harness.is_local("gsm8k") and calls == [1]
    cfg["harness"]["tasks"] = ["mergelab_categories"]
    load_experiment(cfg, "cfg.yaml", workdir=wd, lm_eval_tasks=index)
    assert calls == [1]  # own tasks only: lm-eval's index is not needed
    cfg["harness"]["tasks"] = ["mmlu_pro"]
    with pytest.raises(ConfigError, match=r"harness.tasks\[0\]: unknown lm-eval task 'mmlu_pro'; did you mean mmlu"):
        load_experiment(cfg, "cfg.yaml", workdir=wd, lm_eval_tasks=index)


def test_demo_task_data_is_what_the_generator_writes():
    from mergelab.embedded.demo_tasks import task_data

    data = REPO / "workflow" / "tasks" / "mergelab_demo" / "data"
    expected = task_data()
    assert sorted(p.name for p in data.glob("*.jsonl")) == sorted(expected)
    for name, rows in expected.items():
        lines = [json.loads(line) for line in (data / name).read_text().splitlines()]
        assert lines == rows, name


def test_demo_task_prompts_are_the_trained_question_forms():
    """The task YAMLs and mergelab.embedded.demo_tasks both spell the prompts: they must agree, or the
    experts would be asked in a form they were never trained on."""
    import jinja2

    from mergelab.embedded import demo_tasks as dt

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    tasks = REPO / "workflow" / "tasks" / "mergelab_demo"

    def prompt(task, row):
        spec = yaml.load((tasks / f"{task}.yaml").read_text(), Loader=Loader)
        return jinja2.Template(spec["doc_to_text"]).render(**row)

    sums, kinds = dt.task_data()["arithmetic_test.jsonl"], dt.task_data()["categories_test.jsonl"]
    assert prompt("mergelab_arithmetic", sums[0]) == dt.arithmetic_text(sums[0]["a"], sums[0]["b"])
    assert prompt("mergelab_categories", kinds[0]) == dt.category_text(kinds[0]["noun"])


def test_demo_task_items_are_held_out_from_training():
    from mergelab.embedded import demo_tasks as dt

    held = [(r["a"], r["b"]) for r in dt.arithmetic_items()]
    assert len(set(held)) == len(held) == dt.ARITHMETIC_TEST
    training = dt.arithmetic_training(20000, seed=1)
    assert not {dt.arithmetic_text(a, b, a + b) for a, b in held} & set(training)
    for a, b in held:  # four digits plus one, no carrying
        assert 1000 <= a <= 9999 and 0 <= b <= 9 and a % 10 + b <= 9

    items = dt.category_items()
    test = {r["noun"] for r in items if r["held_out"]}
    trained = " ".join(dt.category_training())
    assert len(test) == 16 and not any(f"The {n} is" in trained for n in test)
    for kind in dt.KINDS:  # every kind has held-out nouns, and the base's text mentions each of them
        assert sum(r["answer"] == kind for r in items if r["held_out"]) == 4
    text = " ".join(dt.corpus(6000, seed=0))
    assert all(f" {n} " in text for n in test)
    for r in items:
        assert r["choices"][r["label"]] == r["answer"] and r["choices"] == list(dt.KINDS)


def test_holmes_plan_selects_datasets_and_models(wd):
    cfg = {
        "models": models("base", "coder"),
        "merges": [recipe(models=["coder"], methods=["ties"])],
        "evaluation": {"models": ["base", "cm"]},
        "holmes": {"activate": True, "version": "flash-holmes", "datasets": ["coref", "senteval-*"]},
    }
    h = exp(cfg, wd).holmes
    assert h.models == ["base", "cm_ties_d0.5_w0.5"]
    assert "coref" in h.datasets and len(h.datasets) > 2
    assert all(d == "coref" or d.startswith("senteval-") for d in h.datasets)
    assert h.data_dir == str((wd / "data/holmes/flash-holmes").resolve())
    cfg["holmes"]["datasets"] = None
    assert len(exp(cfg, wd).holmes.datasets) == 190
    cfg["holmes"]["version"] = "holmes"
    assert len(exp(cfg, wd).holmes.datasets) == 208
    cfg["holmes"]["activate"] = False
    assert exp(cfg, wd).holmes.models == []


def test_hub_parents_are_fetched_and_merges_pushed_by_pattern(wd, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    cfg = {
        "models": {"q": {"hub": "Qwen/Qwen2.5-7B", "revision": "abc"}, **models("coder")},
        "merges": [recipe(models=["coder"], base="q", methods=["ties"])],
        "hub": {"push": {"activate": True, "namespace": "me", "repo_name": "mergelab-{recipe}-{method}"}},
    }
    e = exp(cfg, wd)
    assert e.models["q"].receipt == "results/hub/parents/q.json"
    assert e.model_input("q") == ["results/hub/parents/q.json"] and e.receipt("coder") is None
    assert e.hub.repos == {"cm_ties_d0.5_w0.5": "me/mergelab-cm-ties"}


# ---- the YAML itself (issue 15): duplicate keys, syntax errors, files that are not there


def test_task_vector_methods_over_a_base_accept_one_model(wd):
    """base + one model scales or sparsifies one task vector: a real merge, unlike a linear of one."""
    cfg = {"models": models("base", "coder"), "merges": [recipe(models=["coder"], methods=["task_arithmetic", "ties"])]}
    e = exp(cfg, wd)
    assert sorted(list(e.merges)) == ["cm_task_arithmetic_w0.5", "cm_ties_d0.5_w0.5"]


DUPLICATE = """models:
  math: {path: models/math}
  coder: {path: models/coder}
  math: {path: models/extra}
"""


def test_a_key_given_twice_is_an_error_naming_file_line_and_key(tmp_path):
    from mergelab.plan.load import read_config_file

    (tmp_path / "dup.yaml").write_text(DUPLICATE)
    with pytest.raises(ConfigError) as err:
        read_config_file(tmp_path / "dup.yaml")
    assert str(err.value) == (
        f"{tmp_path / 'dup.yaml'}: not valid YAML (line 4, column 3): key 'math' appears twice in one mapping "
        "(first on line 2); YAML would keep only the last"
    )
    # YAML's merge keys may still be overridden, as YAML intends
    (tmp_path / "anchors.yaml").write_text("a: &s {x: 1, y: 2}\nb:\n  <<: *s\n  x: 3\n")
    assert read_config_file(tmp_path / "anchors.yaml")["b"] == {"x": 3, "y": 2}


def test_a_raw_mergekit_file_with_a_key_twice_is_refused(wd):
    (wd / "raw.yml").write_text("merge_method: linear\nmerge_method: ties\nmodels: []\n")
    with pytest.raises(
        ConfigError, match=r"raw\.yml is not valid YAML \(line 2, column 1\): key 'merge_method' appears"
    ):
        exp({"models": models("base"), "merges": [{"name": "raw", "mergekit_config": "raw.yml"}]}, wd)


@pytest.mark.workflow
def test_a_configfile_with_a_key_twice_stops_snakemake_with_one_line(wd):
    (wd / "dup.yaml").write_text(DUPLICATE)
    proc = snakemake(wd, wd / "dup.yaml", "-n")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mergelab: dup.yaml: not valid YAML (line 4, column 3): key 'math' appears twice"), last


def _check(tmp_path, *files):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_config.py"), *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_check_config_names_file_line_and_column_where_snakemake_cannot(wd):
    """Snakemake reads --configfile before the workflow: for these it says only "Config file is not
    valid JSON or YAML" (or prints a traceback). scripts/check_config.py says where."""
    (wd / "tab.yaml").write_text("models:\n\tmath: {path: models/math}\n")
    (wd / "syntax.yaml").write_text("models: {math: [\n")
    (wd / "dup.yaml").write_text(DUPLICATE)
    assert _check(wd, "tab.yaml") == (
        1,
        "mergelab: tab.yaml: not valid YAML (line 2, column 1): found character '\\t' that cannot start any token",
    )
    code, out = _check(wd, "syntax.yaml")
    assert code == 1 and out.startswith("mergelab: syntax.yaml: not valid YAML (line 2, column 1): "), out
    code, out = _check(wd, "dup.yaml")
    assert code == 1 and "dup.yaml: not valid YAML (line 4, column 3): key 'math' appears twice" in out
    code, out = _check(wd, "nowhere.yaml")
    assert code == 1 and out.startswith("mergelab: nowhere.yaml: config file not found"), out
    # what the workflow checks, too: a recipe, in the second of two merged files
    (wd / "a.yaml").write_text("models: {base: {path: models/base}, coder: {path: models/coder}}\n")
    (wd / "b.yaml").write_text("merges: [{name: x, models: [coder], methods: [linear]}]\n")
    code, out = _check(wd, "a.yaml", "b.yaml")
    assert code == 1 and out.startswith("mergelab: a.yaml + b.yaml: merges[0].models: linear of one model"), out
    (wd / "b.yaml").write_text("merges: [{name: x, models: [coder], base: base, methods: [task_arithmetic]}]\n")
    assert _check(wd, "a.yaml", "b.yaml") == (
        0,
        "a.yaml + b.yaml: ok: 2 models, 1 merges, 0 evaluation jobs (0 harness tasks, Holmes off)",
    )
