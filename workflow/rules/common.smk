# Glue between Snakemake and the plan (scripts/mergelab/plan/): load the experiment, then the
# input, param, resource and target functions the rules call. What a rule is (its job spec,
# version, sizing, priority, whether it is light or waits for a search) is its entry of the rule
# table, mergelab.plan.rules.RULES; light imports only, since this runs whenever the DAG is built.

import os
import sys
from pathlib import Path

# scripts/ of this clone (not of a workflow that uses mergelab as a module)
SCRIPTS = Path(str(workflow.current_basedir)).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from snakemake.utils import update_config  # noqa: E402

from mergelab.analysis import outputs  # noqa: E402
from mergelab.plan import paths  # noqa: E402
from mergelab.plan.cli import rule_typed_as_target, typed_cli_values  # noqa: E402
from mergelab.plan.errors import ConfigError  # noqa: E402
from mergelab.plan.experiment import load_experiment  # noqa: E402
from mergelab.plan.figures import FIGURES, figures  # noqa: E402
from mergelab.plan.load import DEFAULT_CONFIG, read_config_file  # noqa: E402
from mergelab.plan.rules import SEARCH, rule, rule_resources, version_param  # noqa: E402
from mergelab.plan.resources import gpu_job_threads  # noqa: E402


wildcard_constraints:
    model=r"[^/]+",
    task=r"[^/]+",


def _load_config():
    """The validated experiment: the config a workflow using mergelab as a module passes, else
    --configfile's, else the embedded default; then --config."""
    files = workflow.config_settings.configfiles
    # `module mergelab: config: ...` wins; the top-level workflow's modifier says is_module too,
    # but only a module statement passes a config (and skips the config file)
    if workflow.modifier.skip_configfile and config:
        return load_experiment(config, "the config of module mergelab", workdir=os.getcwd())
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
for _stop in (rule_typed_as_target(), EXP.storage.conflict):
    if _stop:
        sys.exit(f"mergelab: {_stop}")
STORAGE = EXP.storage
RELEASED = STORAGE.released


def light_rule(name):
    """localrule: a light rule runs where snakemake runs unless compute.light_rules says cluster."""
    return EXP.compute.runs_locally(rule(name).light)


def rule_priority(name):
    """A search's chain before other evaluations; readers of merged weights before new merges."""
    kind = rule(name).priority
    return (2 if EXP.searches else 0) if kind == SEARCH else STORAGE.reader_priority if kind else 0


def get_gpu_job_threads(wildcards):
    """CPU threads of a GPU job (mergelab.plan.resources.gpu_job_threads)."""
    res = {k: getattr(v, "value", v) for k, v in workflow.global_resources.items()}
    return gpu_job_threads(res.get("_cores"), res.get("gpu"))


def search_inputs(rulename, wildcards):
    """Wait for what decides a job's params (checkpoints): a trial's jobs for its generation's
    proposals (search_propose), a best trial's full evaluations and the rules listing every model
    for every search's summary (search_summary), whose best trials then join the evaluated models.
    Returns those files, as inputs: Snakemake needs them there, and they rerun the job when a
    search proposes again."""
    global EXP
    out, model = {}, wildcards.get("model")
    found = EXP.trial(model) if model else None
    if found:
        plan, number = found
        checkpoints.search_propose.get(search=plan.name, generation=plan.generation_of(number))
        out["proposals"] = EXP.proposals_file(model)
    if (found and not rule(rulename).trial) or rule(rulename).lists_every_model:
        for name in EXP.searches:
            checkpoints.search_summary.get(search=name)
        EXP = EXP.with_best_trials()  # a new view, with the best trials evaluated like any merge
        out["searches"] = [paths.SEARCH_BEST.format(search=s) for s in EXP.searches]
    return out


def job_param(name, field):
    """Param ``field`` of the jobs of ``name``, the field of their spec (mergelab.plan.jobs)."""

    def get(wildcards):
        search_inputs(name, wildcards)  # waits for the checkpoints that decide the job
        # search_best: a trial merged again beside its search; {search} is no field of a merge job
        w = {k: v for k, v in wildcards.items() if not (name == "merge" and k == "search")}
        return EXP.job_params(name, **w)[field]

    get.__name__ = f"get_{name}_{field}"
    return get


def job_resource(name, key):
    """Resource ``key`` (gpu, mem_mb, runtime) of a job of GPU rule ``name``, from its models' size
    (mergelab.plan.resources); Snakemake asks again when the job is ready."""

    def get(wildcards):
        return rule_resources(EXP, name, **{k: v for k, v in wildcards.items() if k in ("model", "task")})[key]

    get.__name__ = f"get_{name}_{key}"
    return get


def weights(files):
    """Inputs naming models' weights: a deleted merge's are ancient, so that making them
    again (snakemake results/models/<id>) makes none of the jobs that read them rerun."""
    if isinstance(files, str):
        return ancient(files) if files in STORAGE.deleted_dirs else files
    return [weights(f) for f in files]


def job_input(name):
    """The named inputs of a job of rule ``name`` (mergelab.plan.inputs), weights made ancient where
    deleted, and what decides its params (checkpoints)."""

    def get(wildcards):
        found = search_inputs(name, wildcards)  # first: a trial's spec needs its proposals
        files = rule(name).inputs(EXP, **wildcards)
        return {**{k: weights(v) if k in ("model", "models") else v for k, v in files.items()}, **found}

    get.__name__ = f"get_{name}_input"
    return get


# ---- outputs


def table_outputs():
    """The tables; the leaderboard is in the report."""
    caption = "../report/tables.rst"
    return {
        k: report(v, category="Tables", caption=caption) if k == "leaderboard" else v for k, v in paths.TABLES.items()
    }


def plot_outputs():
    """Every figure's PNG (in the report), SVG and data CSV (mergelab.plan.figures.FIGURES)."""
    out = []
    for f in figures(EXP):
        fig = FIGURES[f["figure"]]
        out.append(report(f"{f['stem']}.png", caption=f"../report/{fig.caption}.rst", category=fig.category))
        out += [f"{f['stem']}.svg", f"{f['stem']}.csv"]
    return out


# ---- targets and the end of a run


def targets(what):
    """The files of target rule ``what`` (merges, evaluations, tables, plots, pushes, all)."""

    def get(wildcards):
        return EXP.targets(what)

    get.__name__ = f"get_{what}_targets"
    return get


def end_of_run(success):
    """onsuccess/onerror: where the leaderboard, report and figures are; on failure, which jobs
    failed (their logs) and the tables of what exists, built in results/partial/ by a subprocess
    (never where the rules write) when this run was to make the tables."""
    log_path = "logs/organize/partial.log"
    failed = getattr(getattr(workflow, "scheduler", None), "failed", None) or ()
    partial = False
    if not success and EXP.targets("tables"):
        planned = {str(f) for j in workflow.dag.needrun_jobs(exclude_finished=False) for f in j.output}
        partial = outputs.run_partial_build(EXP, planned, log_path, SCRIPTS)
    keep_going = workflow.execution_settings.keep_going
    print(outputs.end_of_run(success, outputs.failed_jobs(failed), partial, keep_going, log_path), file=sys.stderr)


outputs.register_end_of_run(end_of_run)  # for a workflow that uses mergelab as a module
