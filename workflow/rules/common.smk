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
from mergelab.resources import estimate, resolve, size_of  # noqa: E402


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


# Light rules (demo data, fetch, push, tables, plots) run on the host running
# snakemake unless compute.light_rules says cluster.
LIGHT_LOCAL = EXP.config["compute"]["light_rules"] == "local"


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


def _job_resources(rulename, wildcards):
    """gpu, mem_mb and runtime of one job, estimated from the size of the models
    it reads (see scripts/mergelab/resources.py), then the config's overrides.
    Snakemake calls this again just before the job starts, when its inputs exist."""
    name = wildcards.model
    gpu_memory_gb = EXP.config["compute"]["gpu_memory_gb"]
    if rulename == "merge":
        spec = _merge(wildcards)
        sizes = [size_of(EXP.models[m].input_path) for m in spec.inputs]
        # a passthrough stack or a mixture of experts is as big as its parts together
        passthrough = spec.method == "moe" or spec.mergekit_config.get("merge_method") == "passthrough"
        est = estimate(rulename, sizes, dtype=spec.dtype, passthrough=passthrough)
        return resolve(rulename, est, spec.gpus, spec.resources)
    if rulename == "harness_eval":
        s = EXP.harness.settings_for(name, wildcards.task)
        dtype, quantization = s["dtype"], s["quantization"]
    else:
        dtype, quantization = EXP.holmes.settings["dtype"] or EXP.model_dtype(name), None
    sizes = [size_of(p) for p in EXP.model_input(name)] or [None]
    est = estimate(rulename, sizes, dtype=dtype, quantization=quantization, gpu_memory_gb=gpu_memory_gb)
    return resolve(rulename, est, EXP.gpus(name), EXP.resource_overrides(name))


def _resource(rulename, key):
    """Resource callable of one rule for one key of _job_resources."""

    def get(wildcards):
        return _job_resources(rulename, wildcards)[key]

    return get


get_merge_gpus = _resource("merge", "gpu")
get_merge_mem_mb = _resource("merge", "mem_mb")
get_merge_runtime = _resource("merge", "runtime")
get_harness_gpus = _resource("harness_eval", "gpu")
get_harness_mem_mb = _resource("harness_eval", "mem_mb")
get_harness_runtime = _resource("harness_eval", "runtime")
get_holmes_gpus = _resource("holmes_eval", "gpu")
get_holmes_mem_mb = _resource("holmes_eval", "mem_mb")
get_holmes_runtime = _resource("holmes_eval", "runtime")


def get_merge_input(wildcards):
    spec = _merge(wildcards)
    inputs = {"models": [m.input_path for m in map(EXP.models.get, spec.inputs) if m.input_path]}
    if spec.raw_file:
        inputs["mergekit_config"] = spec.raw_file
    return inputs


def get_merge_config(wildcards):
    return json.dumps(_merge(wildcards).mergekit_config, sort_keys=True)


def get_merge_receipts(wildcards):
    """mergekit reference of each hub parent -> its fetch receipt (the job uses the local snapshot)."""
    spec = _merge(wildcards)
    models = [EXP.models[m] for m in spec.inputs]
    return json.dumps({m.mergekit_ref: m.receipt for m in models if m.receipt}, sort_keys=True)


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
            "receipt": EXP.receipt(model),
            "task": task,
            "settings": plan.settings_for(model, task),
            "include_paths": plan.include_paths,
            "include_defaults": not plan.is_local(task),
        },
        sort_keys=True,
    )


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
            "receipt": EXP.receipt(wildcards.model),
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


# ---- organize and plot stages

TABLES = {
    "harness": "results/tables/harness.csv",
    "harness_parquet": "results/tables/harness.parquet",
    "holmes": "results/tables/holmes.csv",
    "competences": "results/tables/holmes_competences.csv",
    "comparisons": "results/tables/merge_comparisons.csv",
    "leaderboard": "results/tables/leaderboard.md",
    "provenance": "results/tables/provenance.json",
}


def _organize_context():
    """What the tables need to know about every model and evaluation (the organize job's params)."""
    models = {}
    for name, m in EXP.models.items():
        models[name] = {"role": EXP.role(name), "kind": m.kind, "location": m.location,
                        "revision": m.revision, "dtype": m.dtype}
    for mid, spec in EXP.merges.items():
        models[mid] = {"role": "merge", "recipe": spec.recipe, "method": spec.method, "parameters": spec.params,
                       "seed": spec.seed, "parents": spec.parents, "base": spec.base, "dtype": spec.dtype,
                       "mergekit_config": spec.mergekit_config}
    h, ho = EXP.harness, EXP.holmes
    return {
        "model_order": list(models),
        "models": models,
        "harness": {"tasks": h.tasks, "settings": h.settings, "model_settings": h.model_settings,
                    "task_settings": h.task_settings},
        "holmes": {"active": ho.active, "version": ho.version, "datasets": ho.datasets, "settings": ho.settings},
        "files": {
            "harness": {m: {t: f"results/harness/{m}/{t}.json" for t in h.tasks} for m in h.models},
            "holmes": {m: f"results/holmes/{m}/scores.csv" for m in ho.models},
            "holmes_manifest": ho.manifest if ho.models else "",
        },
    }


ORGANIZE_CONTEXT = _organize_context()


def get_organize_input(wildcards):
    files = ORGANIZE_CONTEXT["files"]
    out = {"merges": "results/merges.tsv"}
    out["harness"] = [p for tasks in files["harness"].values() for p in tasks.values()]
    out["holmes"] = list(files["holmes"].values())
    if files["holmes_manifest"]:
        out["manifest"] = files["holmes_manifest"]
    return out


def get_organize_context(wildcards):
    return json.dumps(ORGANIZE_CONTEXT, sort_keys=True)


def _plot_stems():
    from mergelab.plots import swept

    h, ho = EXP.harness, EXP.holmes
    stems = {}
    if h.tasks and h.models:
        stems.update({f"harness_{t}": f"results/plots/harness/{t}" for t in h.tasks})
    if ho.models:
        stems["holmes_competences"] = "results/plots/holmes_competences"
    if h.tasks and h.models and ho.models:
        stems["kendall_competences"] = "results/plots/kendall_tau_competences"
        stems["kendall_datasets"] = "results/plots/kendall_tau_datasets"
    if EXP.merges and (h.models or ho.models):
        stems["merge_vs_parents"] = "results/plots/merge_vs_parents"
        stems["merge_outcomes"] = "results/plots/merge_outcomes"
        stems.update({f"sweep_{r}": f"results/plots/sweep/{r}" for r in swept(ORGANIZE_CONTEXT)})
    return stems


PLOT_STEMS = _plot_stems()
_CAPTIONS = {"harness": "harness_task", "holmes": "holmes_competences", "kendall": "kendall", "merge": "merges",
             "sweep": "sweep"}
_CATEGORIES = {"harness": "Harness", "holmes": "Holmes", "kendall": "Holmes vs harness", "merge": "Merges",
               "sweep": "Sweeps"}


def plot_outputs():
    """Every figure's PNG (in the report), SVG and data CSV."""
    out = []
    for key, stem in PLOT_STEMS.items():
        kind = key.split("_")[0]
        out.append(report(f"{stem}.png", caption=f"../report/{_CAPTIONS[kind]}.rst", category=_CATEGORIES[kind]))
        out += [f"{stem}.svg", f"{stem}.csv"]
    return out


def get_plot_params(wildcards):
    return json.dumps({"stems": PLOT_STEMS, "tables": TABLES}, sort_keys=True)


def get_tables_targets(wildcards):
    return list(TABLES.values()) if (EXP.harness.models or EXP.holmes.models) else []


def get_plots_targets(wildcards):
    return [f"{stem}.png" for stem in PLOT_STEMS.values()]


# ---- hub stage


def _hub_parent(wildcards):
    m = EXP.models.get(wildcards.model)
    if m is None or m.kind != "hub":
        raise ValueError(f"{wildcards.model!r} is not a hub model of this config")
    return m


def get_fetch_params(wildcards):
    from mergelab.hub import allow_patterns

    m, hub = _hub_parent(wildcards), EXP.hub
    cache = hub.fetch["cache_dir"]
    return json.dumps(
        {
            "repo_id": m.location,
            "revision": m.revision,
            "patterns": allow_patterns(hub.fetch["allow_patterns"], hub.fetch["allow_pickles"]),
            "cache_dir": str(Path(cache).resolve()) if cache else None,
            "retries": hub.retries,
            "retry_wait": hub.retry_wait,
        },
        sort_keys=True,
    )


def _pushed(wildcards):
    if wildcards.model not in EXP.hub.repos:
        raise ValueError(f"{wildcards.model!r} is not a merge pushed by this config")
    return EXP.hub.repos[wildcards.model]


def get_push_params(wildcards):
    hub = EXP.hub
    return json.dumps(
        {
            "repo_id": _pushed(wildcards),
            "private": hub.push["private"],
            "message": f"mergelab: {wildcards.model}",
            "retries": hub.retries,
            "retry_wait": hub.retry_wait,
        },
        sort_keys=True,
    )


def get_push_results_params(wildcards):
    return json.dumps(
        {"repo_id": _pushed(wildcards), "model": wildcards.model, "retries": EXP.hub.retries,
         "retry_wait": EXP.hub.retry_wait},
        sort_keys=True,
    )


def get_push_targets(wildcards):
    hub = EXP.hub
    if not hub.pushing:
        return []
    out = [f"results/hub/{m}.json" for m in hub.repos]
    if hub.push["results"] and get_tables_targets(wildcards):
        evaluated = set(EXP.harness.models) | set(EXP.holmes.models)
        out += [f"results/hub/results/{m}.json" for m in hub.repos if m in evaluated]
    return out


def get_all_targets(wildcards):
    return (get_merges_targets(wildcards) + get_evaluation_targets(wildcards) + get_tables_targets(wildcards)
            + get_plots_targets(wildcards) + get_push_targets(wildcards))


def build_partial_outputs(log_path="logs/organize/partial.log"):
    """onerror: tables and figures from the results that exist (a subprocess: no heavy imports here)."""
    import subprocess
    import tempfile

    if not get_tables_targets(None):
        return
    spec = {"context": ORGANIZE_CONTEXT, "tables": TABLES, "stems": PLOT_STEMS, "log": log_path}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    env = dict(os.environ, PYTHONPATH=str(Path(workflow.basedir) / "scripts"))
    proc = subprocess.run([sys.executable, "-m", "mergelab.outputs", fh.name], env=env)
    os.unlink(fh.name)
    if proc.returncode == 0:
        print(f"mergelab: a job failed; tables and figures were built from the results that exist "
              f"(gaps marked missing, listed in {log_path})", file=sys.stderr)
