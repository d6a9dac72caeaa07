# Config loading, expansion and the input functions of every stage.
# Light imports only: this runs every time Snakemake builds the DAG.

import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from snakemake.utils import update_config  # noqa: E402

from mergelab.config import (  # noqa: E402
    DEFAULT_CONFIG,
    ConfigError,
    load_experiment,
    read_config_file,
    typed_cli_values,
)


wildcard_constraints:
    model=r"[^/]+",
    task=r"[^/]+",


def _load_config():
    """The validated experiment: --configfile's, or the embedded default; then --config."""
    files = workflow.config_settings.configfiles
    if files:
        source = " + ".join(os.path.relpath(f) for f in files)
    else:
        source = DEFAULT_CONFIG
        update_config(config, read_config_file(source) or {})
    # Snakemake reads nested --config values as strings ({activate: false} -> 'false'):
    # read them as YAML, as they would be in the config file.
    update_config(config, typed_cli_values(dict(workflow.config_settings.config)))
    return load_experiment(config, source, workdir=os.getcwd())


try:
    EXP = _load_config()
except ConfigError as _err:
    sys.exit(f"mergelab: {_err}")


def _global_resource(name):
    res = workflow.global_resources.get(name)
    return getattr(res, "value", res)


def get_gpu_job_threads(wildcards):
    """CPU threads of a GPU job: the cores shared among the GPUs that run at once
    (--cores 16 --resources gpu=4: four jobs of four threads). Without a GPU
    count (a CPU run, or --resources gpu=0) one thread, so that as many jobs run
    at once as there are cores; raise it with --set-threads merge=N."""
    cores = _global_resource("_cores") or 4
    gpus = _global_resource("gpu")
    return max(1, cores // gpus) if gpus else 1


def _merge(wildcards):
    try:
        return EXP.merges[wildcards.model]
    except KeyError:
        raise ValueError(f"{wildcards.model!r} is not a merge of this config (see results/merges.tsv)") from None


def get_merge_gpus(wildcards):
    return _merge(wildcards).gpus if _merge(wildcards).gpus is not None else 1


def get_merge_input(wildcards):
    spec = _merge(wildcards)
    inputs = {"models": [m.input_path for m in map(EXP.models.get, spec.inputs) if m.input_path]}
    if spec.raw_file:
        inputs["mergekit_config"] = spec.raw_file
    return inputs


def get_merge_config(wildcards):
    return json.dumps(_merge(wildcards).mergekit_config, sort_keys=True)


def get_merge_meta(wildcards):
    spec = _merge(wildcards)
    hub = [EXP.models[m].location for m in spec.inputs if EXP.models[m].kind == "hub"]
    meta = {
        "recipe": spec.recipe,
        "method": spec.method,
        "seed": spec.seed,
        "inputs": spec.inputs,
        "parameters": spec.params,
        "hub_parents": hub,
    }
    return json.dumps(meta, sort_keys=True)


def get_merge_seed(wildcards):
    return _merge(wildcards).seed


def get_merges_targets(wildcards):
    return expand("results/models/{model}", model=EXP.merge_ids) + ["results/merges.tsv"]


# ---- harness stage


def _task_regex(tasks):
    """A wildcard constraint matching exactly these task names (never-matching when empty)."""
    return "|".join(re.escape(t) for t in tasks) if tasks else "(?!x)x"


HARNESS_SAMPLES_TASKS = _task_regex(EXP.harness.samples_tasks)
HARNESS_PLAIN_TASKS = _task_regex([t for t in EXP.harness.tasks if t not in EXP.harness.samples_tasks])


def _evaluated(wildcards):
    if wildcards.model not in EXP.harness.models or wildcards.task not in EXP.harness.tasks:
        raise ValueError(f"({wildcards.model}, {wildcards.task}) is not an evaluation of this config")
    return wildcards.model, wildcards.task


def get_harness_input(wildcards):
    model, _ = _evaluated(wildcards)
    return {"model": EXP.model_input(model)}


def get_harness_params(wildcards):
    model, task = _evaluated(wildcards)
    plan = EXP.harness
    return json.dumps(
        {
            "model": model,
            "model_path": EXP.model_path(model),
            "local": bool(EXP.model_input(model)),
            "task": task,
            "settings": plan.settings_for(model, task),
            "include_paths": plan.include_paths,
            "include_defaults": not plan.is_local(task),
        },
        sort_keys=True,
    )


def get_model_gpus(wildcards):
    return EXP.gpus(wildcards.model)


def get_harness_targets(wildcards):
    plan = EXP.harness
    out = expand("results/harness/{model}/{task}.json", model=plan.models, task=plan.tasks)
    out += expand("results/harness/{model}/{task}.samples.jsonl", model=plan.models, task=plan.samples_tasks)
    return out


# ---- holmes stage


def get_holmes_data_params(wildcards):
    plan = EXP.holmes
    return json.dumps(
        {
            "version": plan.version,
            "root": plan.root,
            "archive": plan.archive,
            "url": plan.url,
            "datasets": plan.datasets,
        },
        sort_keys=True,
    )


def get_holmes_input(wildcards):
    if wildcards.model not in EXP.holmes.models:
        raise ValueError(f"{wildcards.model!r} is not probed by this config")
    return {"model": EXP.model_input(wildcards.model), "manifest": EXP.holmes.manifest}


def get_holmes_params(wildcards):
    plan = EXP.holmes
    settings = dict(plan.settings)
    settings["dtype"] = settings["dtype"] or EXP.model_dtype(wildcards.model)
    return json.dumps(
        {
            "model": wildcards.model,
            "model_path": EXP.model_path(wildcards.model),
            "local": bool(EXP.model_input(wildcards.model)),
            "data_dir": plan.data_dir,
            "datasets": plan.datasets,
            "settings": settings,
        },
        sort_keys=True,
    )


def get_holmes_targets(wildcards):
    return expand("results/holmes/{model}/scores.csv", model=EXP.holmes.models)


def get_evaluation_targets(wildcards):
    return get_harness_targets(wildcards) + get_holmes_targets(wildcards)


def get_all_targets(wildcards):
    return get_merges_targets(wildcards) + get_evaluation_targets(wildcards)
