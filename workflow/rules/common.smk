# Config loading, expansion and the input functions of every stage.
# Light imports only: this runs every time Snakemake builds the DAG.

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from snakemake.utils import update_config  # noqa: E402

from mergelab.config import DEFAULT_CONFIG, ConfigError, load_experiment, read_config_file  # noqa: E402


wildcard_constraints:
    model=r"[^/]+",


def _load_config():
    """The validated experiment: --configfile's, or the embedded default."""
    files = workflow.config_settings.configfiles
    if files:
        source = " + ".join(os.path.relpath(f) for f in files)
    else:
        source = DEFAULT_CONFIG
        update_config(config, read_config_file(source) or {})
        update_config(config, workflow.config_settings.overwrite_config)
    return load_experiment(config, source, workdir=os.getcwd())


try:
    EXP = _load_config()
except ConfigError as _err:
    sys.exit(f"mergelab: {_err}")


def _global_resource(name):
    res = workflow.global_resources.get(name)
    return getattr(res, "value", res)


def get_gpu_job_threads(wildcards):
    """Threads of a GPU job: the cores shared among the GPUs that run at once
    (--cores 4 --resources gpu=4: four jobs of one thread), all of them on a
    CPU-only run. Without --cores (cluster), 4."""
    cores = _global_resource("_cores") or 4
    gpus = _global_resource("gpu")
    return max(1, cores // gpus) if gpus else cores


def _merge(wildcards):
    try:
        return EXP.merges[wildcards.model]
    except KeyError:
        raise ValueError(f"{wildcards.model!r} is not a merge of this config (see results/merges.tsv)") from None


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


def get_all_targets(wildcards):
    return get_merges_targets(wildcards)
