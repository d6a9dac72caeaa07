# Glue between Snakemake and the plan (scripts/mergelab/plan/): load the experiment,
# then the input, param, resource and target functions the rules call. Decisions
# live in the plan; light imports only, since this runs whenever the DAG is built.

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from snakemake.utils import update_config  # noqa: E402

from mergelab import outputs  # noqa: E402
from mergelab.plan import paths  # noqa: E402
from mergelab.plan.cli import rule_typed_as_target, typed_cli_values  # noqa: E402
from mergelab.plan.errors import ConfigError  # noqa: E402
from mergelab.plan.experiment import load_experiment  # noqa: E402
from mergelab.plan.load import DEFAULT_CONFIG, read_config_file  # noqa: E402
from mergelab.resources import gpu_job_threads, job_resources  # noqa: E402


wildcard_constraints:
    model=r"[^/]+",
    task=r"[^/]+",


def _load_config():
    """The validated experiment: --configfile's, or the embedded default; then --config."""
    files = workflow.config_settings.configfiles
    if files:
        source = " + ".join(os.path.relpath(f) for f in files)
        for f in files:  # Snakemake has read them; again, strictly: a key given twice is an error
            read_config_file(os.path.relpath(f))
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
_misnamed_target = rule_typed_as_target()
if _misnamed_target:
    sys.exit(f"mergelab: {_misnamed_target}")


# Light rules (demo data, fetch, push, tables, plots) run on the host running
# snakemake unless compute.light_rules says cluster.
LIGHT_LOCAL = EXP.config["compute"]["light_rules"] == "local"


def _global_resource(name):
    res = workflow.global_resources.get(name)
    return getattr(res, "value", res)


def get_gpu_job_threads(wildcards):
    """CPU threads of a GPU job (mergelab.resources.gpu_job_threads)."""
    return gpu_job_threads(_global_resource("_cores"), _global_resource("gpu"))


# ---- params and resources: one function per name, from the job's typed spec


# ---- merge search: jobs wait for what decides them (checkpoints)

# a search's chain of generations before other evaluations: each generation waits for the last
SEARCH_PRIORITY = 2 if EXP.searches else 0
# rules whose params list every model evaluated: they wait for every search's best trials
WAIT_FOR_SEARCHES = {"organize", "plot", "merges_table"}


def await_trial(model):
    """A trial's jobs wait for its generation's proposals (checkpoint search_propose)."""
    found = EXP.trial(model)
    if found:
        plan, number = found
        checkpoints.search_propose.get(search=plan.name, generation=plan.generation_of(number))


def await_searches():
    """Wait for every search's summary (checkpoint search_summary); its best trials then join
    the evaluated models (Experiment.include_best)."""
    for name in EXP.searches:
        checkpoints.search_summary.get(search=name)
        EXP.include_best(name)


# the rules of a trial's own jobs; any other job of a trial is a best trial's full evaluation
TRIAL_RULES = ("merge", "merge_released", "search_eval", "search_probe")


def search_inputs(rulename, wildcards):
    """Wait for what decides a job's params (checkpoints): a trial's jobs for its generation's
    proposals, a best trial's full evaluations and the rules listing every model for every
    search's summary. Returns those files, as inputs: Snakemake needs them there, and they
    rerun the job when a search proposes again."""
    out = {}
    model = wildcards.get("model")
    if model and EXP.trial(model):
        await_trial(model)
        out["proposals"] = EXP.proposals_file(model)
    if (model and EXP.trial(model) and rulename not in TRIAL_RULES) or rulename in WAIT_FOR_SEARCHES:
        await_searches()
        out["searches"] = [paths.SEARCH_BEST.format(search=s) for s in EXP.searches]
    return out


def job_param(rule, name):
    """Param ``name`` of a job of ``rule``: that field of its spec (mergelab.plan.jobs)."""

    def get(wildcards):
        search_inputs(rule, wildcards)  # waits for the checkpoints that decide the job
        # search_best: a trial merged again beside its search; {search} is no field of a merge job
        drop = {"search"} if rule == "merge" else set()
        w = {k: v for k, v in wildcards.items() if k not in drop}
        return EXP.job_params(rule, **w)[name]

    get.__name__ = f"get_{rule}_{name}"
    return get


def job_resource(rule, key):
    """Resource ``key`` (gpu, mem_mb, runtime) of a job of ``rule``, from its models' size
    (mergelab.resources.job_resources); Snakemake asks again when the job is ready."""

    def get(wildcards):
        w = {k: v for k, v in wildcards.items() if k in ("model", "task")}
        return job_resources(EXP, rule, **w)[key]

    get.__name__ = f"get_{rule}_{key}"
    return get


# ---- merges whose weights are deleted (storage.keep_merges)

RELEASED = EXP.released
_released_read = EXP.check_released_reads()
if _released_read:
    sys.exit(f"mergelab: {_released_read}")
_RELEASED_DIRS = {paths.MERGED_MODEL.format(model=m) for m in RELEASED}
# a search's best trials merged again for their full evaluation: deleted after it, as any
# merge is, unless storage.keep_merges is all
BEST_RELEASED = EXP.keep_merges != "all"
if BEST_RELEASED:
    _RELEASED_DIRS |= {
        paths.SEARCH_BEST_MODEL.format(search=p.name, model=t)
        for p in EXP.searches.values()
        if not p.keep_trials
        for t in p.trial_ids
    }
# Jobs that read merged weights run before new merges are made, when weights are deleted.
READER_PRIORITY = 1 if RELEASED else 0


def _ids_regex(ids):
    return "|".join(re.escape(i) for i in ids)


SEARCH_NAMES = _ids_regex(EXP.searches) if EXP.searches else "(?!x)x"
SEARCH_TRIALS = _ids_regex([t for p in EXP.searches.values() for t in p.trial_ids]) or "(?!x)x"


def weights(files):
    """Inputs naming models' weights: a deleted merge's are ancient, so that making them
    again (snakemake results/models/<id>) makes none of the jobs that read them rerun."""
    return [ancient(f) if f in _RELEASED_DIRS else f for f in files]


# ---- inputs


def get_merge_input(wildcards):
    found = search_inputs("merge", wildcards)  # a trial: its generation's proposals
    spec = EXP.merge_spec(wildcards.model)  # a model that is no merge of the config fails here
    inputs = {"models": weights(EXP.merge_inputs(wildcards.model))}
    if spec.raw_file:
        inputs["mergekit_config"] = paths.relative(spec.raw_file, EXP.workdir)
    return {**inputs, **found}


def get_search_propose_input(wildcards):
    """Generation g > 0: the previous generation's journal and its trials' dev results."""
    plan, g = EXP.search(wildcards.search), int(wildcards.generation)
    if g == 0:
        return {}
    return {"journal": plan.journal(g - 1), **plan.dev_inputs(plan.numbers(g - 1))}


def get_search_eval_input(wildcards):
    found = search_inputs("search_eval", wildcards)
    spec = EXP.job("search_eval", search=wildcards.search, model=wildcards.model)
    inputs = {
        "model": weights([paths.MERGED_MODEL.format(model=spec.model)]),
        "data": EXP.harness.data_receipts(spec.tasks),
    }
    return {**inputs, **found}


def get_search_probe_input(wildcards):
    found = search_inputs("search_probe", wildcards)
    EXP.job("search_probe", search=wildcards.search, model=wildcards.model)
    inputs = {"model": weights([paths.MERGED_MODEL.format(model=wildcards.model)]), "manifest": EXP.holmes.manifest}
    return {**inputs, **found}


def get_search_summary_input(wildcards):
    """The last generation's journal, and every trial's dev results (trials.csv)."""
    plan = EXP.search(wildcards.search)
    return {"journal": plan.journal(plan.generations - 1), **plan.dev_inputs(list(range(plan.trials)))}


def get_harness_input(wildcards):
    found = search_inputs("harness_eval", wildcards)
    EXP.job("harness_eval", model=wildcards.model, task=wildcards.task)  # not an evaluation: fails here
    inputs = {"model": weights(EXP.model_input(wildcards.model)), "check": EXP.check_input(wildcards.model)}
    return {**inputs, "data": EXP.harness.data_receipts([wildcards.task]), **found}


def get_harness_model_input(wildcards):
    found = search_inputs("harness_eval_model", wildcards)
    EXP.job("harness_eval_model", model=wildcards.model)  # not evaluated by the harness: fails here
    inputs = {"model": weights(EXP.model_input(wildcards.model)), "check": EXP.check_input(wildcards.model)}
    return {**inputs, "data": EXP.harness.data_receipts(EXP.harness.tasks), **found}


def get_holmes_input(wildcards):
    found = search_inputs("holmes_eval", wildcards)
    EXP.job("holmes_eval", model=wildcards.model)
    inputs = {"model": weights(EXP.model_input(wildcards.model)), "manifest": EXP.holmes.manifest}
    return {**inputs, "check": EXP.check_input(wildcards.model), **found}


def get_sanity_check_input(wildcards):
    spec = EXP.job("sanity_check", model=wildcards.model)  # a model without a check fails here
    return {"model": weights(EXP.model_input(wildcards.model)), "parents": spec.parents}


def get_merge_record_input(wildcards):
    if wildcards.model not in RELEASED:
        raise ValueError(f"{wildcards.model!r} keeps its weights (storage.keep_merges): it has no record")
    return {"model": weights([paths.MERGED_MODEL.format(model=wildcards.model)])[0]}


def get_push_input(wildcards):
    return {"model": weights([paths.MERGED_MODEL.format(model=wildcards.model)])[0]}


def get_push_results_input(wildcards):
    """A pushed merge's card: in its directory, or in its record once its weights are deleted."""
    card = paths.MERGE_RECORD if wildcards.model in RELEASED else paths.MERGED_MODEL
    return {
        "receipt": paths.PUSH_RECEIPT.format(model=wildcards.model),
        "model": card.format(model=wildcards.model),
        "harness": paths.TABLES["harness"],
        "competences": paths.TABLES["competences"],
        "comparisons": paths.TABLES["comparisons"],
    }


def get_organize_input(wildcards):
    found = search_inputs("organize", wildcards)  # the searches' best trials are tabulated too
    files = EXP.result_files()
    out = {"merges": paths.MERGES_TABLE, **found}
    out["harness"] = [p for tasks in files["harness"].values() for p in tasks.values()]
    out["harness_items"] = [p for tasks in files["harness_items"].values() for p in tasks.values()]
    out["holmes"] = list(files["holmes"].values())
    if files["holmes_manifest"]:
        out["manifest"] = files["holmes_manifest"]
    if files.get("holmes_probes"):
        out["probes"] = paths.relative(files["holmes_probes"], EXP.workdir)
    if files.get("checks"):
        out["checks"] = list(files["checks"].values())
    return out


def get_merges_table_input(wildcards):
    return search_inputs("merges_table", wildcards)  # its rows: every merge, then every trial


def get_plot_input(wildcards):
    return {**paths.TABLES, **search_inputs("plot", wildcards)}  # its params name the best trials


# ---- outputs


def _task_regex(tasks):
    """A wildcard constraint matching exactly these task names (never-matching when empty)."""
    return "|".join(re.escape(t) for t in tasks) if tasks else "(?!x)x"


HARNESS_SAMPLES_TASKS = _task_regex(EXP.harness.samples_tasks)
HARNESS_PLAIN_TASKS = _task_regex([t for t in EXP.harness.tasks if t not in EXP.harness.samples_tasks])
HARNESS_DATA_TASKS = _task_regex(EXP.harness.data_tasks)
# results/harness/data/ holds harness_data's receipts, never a model's results
HARNESS_MODEL = r"(?!data$)[^/]+"


def harness_model_outputs():
    """harness_eval_model's outputs: every task's JSON, per-item results (and samples where logged) of {model}."""
    h = EXP.harness
    out = {"json": [paths.HARNESS_JSON.format(model="{model}", task=t) for t in h.tasks]}
    out["per_item"] = [paths.HARNESS_ITEMS.format(model="{model}", task=t) for t in h.tasks]
    if h.samples_tasks:
        out["samples"] = [paths.HARNESS_SAMPLES.format(model="{model}", task=t) for t in h.samples_tasks]
    return out


def table_outputs():
    """The tables; the leaderboard is in the report."""
    caption = "../report/tables.rst"
    return {
        k: report(v, category="Tables", caption=caption) if k == "leaderboard" else v for k, v in paths.TABLES.items()
    }


def plot_outputs():
    """Every figure's PNG (in the report), SVG and data CSV (mergelab.outputs.FIGURES)."""
    out = []
    for f in outputs.figures(EXP):
        fig = outputs.FIGURES[f["figure"]]
        out.append(report(f"{f['stem']}.png", caption=f"../report/{fig.caption}.rst", category=fig.category))
        out += [f"{f['stem']}.svg", f"{f['stem']}.csv"]
    return out


# ---- targets


def targets(what):
    """The files of target rule ``what`` (merges, evaluations, tables, plots, pushes, all)."""

    def get(wildcards):
        return EXP.targets(what)

    get.__name__ = f"get_{what}_targets"
    return get


def _failed_jobs():
    """The jobs of this run that failed: {rule, wildcards, logs} (Snakemake's scheduler)."""
    jobs = getattr(getattr(workflow, "scheduler", None), "failed", None) or ()
    out = [{"rule": j.rule.name, "wildcards": dict(j.wildcards_dict), "logs": [str(f) for f in j.log]} for j in jobs]
    return sorted(out, key=lambda j: (j["rule"], sorted(j["wildcards"].items())))


def _build_partial_outputs(log_path):
    """Tables and figures from the results that exist, in results/partial/ (mergelab.outputs;
    a subprocess: no heavy imports here). Only when this run was to make the tables."""
    import json
    import subprocess
    import tempfile

    planned = {j.rule.name for j in workflow.dag.needrun_jobs(exclude_finished=False)}
    if "organize" not in planned or not EXP.targets("tables"):
        return False
    spec = {
        "organize": EXP.job_params("organize"),
        "plot": EXP.job_params("plot"),
        "log": log_path,
        "source": EXP.source,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    env = outputs.subprocess_env(Path(workflow.basedir) / "scripts")
    proc = subprocess.run([sys.executable, "-m", "mergelab.outputs", fh.name], env=env)
    os.unlink(fh.name)
    return proc.returncode == 0


def end_of_run(success):
    """onsuccess/onerror: where the leaderboard, report and figures are; on failure, which jobs
    failed (their logs) and the tables of what exists, never where the rules write."""
    log_path = "logs/organize/partial.log"
    partial = False if success else _build_partial_outputs(log_path)
    keep_going = workflow.execution_settings.keep_going
    print(outputs.end_of_run(success, _failed_jobs(), partial, keep_going, log_path), file=sys.stderr)
