"""Merge search, the job side: Optuna asks for each generation's trials and is told their scores.

Each generation is one job (rule search_propose) that copies the previous generation's
journal (Optuna's JournalStorage, an append-only log of the study), tells it the scores of
the previous generation's trials (from their dev evaluations), asks for this generation's
trials and writes them (proposals.json) beside its own journal. Nothing is shared between
jobs but declared files, so a search stopped at any point goes on from its last finished
generation, and a finished one reruns nothing. The sampler is seeded from the search's seed
and the generation: the same seed and the same scores give the same trials.

A trial's score: for each objective, the weighted sum of its tasks' primary metrics
(mergelab.analysis.harness_rows.primary_choice), a metric where lower is better counted negatively;
every objective is maximised. A trial whose dev evaluation was skipped, partial or has no
value fails (Optuna's FAIL state), with its reason in trials.csv.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mergelab.analysis.harness_rows import harness_rows
from mergelab.evaluate.completeness import partial_result
from mergelab.plan.holmes_sets import UNKNOWN
from mergelab.plan.search import best_recipe, objective_parts, trial_id, trial_parameters
from mergelab.runtime.jobs import atomic_file

log = logging.getLogger("mergelab.search")


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def generation_seed(seed: int, generation: int) -> int:
    """The sampler's seed in one generation's job: a fresh stream per generation, fixed by the search's seed."""
    import numpy as np

    return int(np.random.SeedSequence([seed, generation]).generate_state(1)[0])


def make_sampler(spec: Dict[str, Any], generation: int):
    optuna = _optuna()
    seed = generation_seed(spec["seed"], generation)
    kind, parallel = spec["sampler"], spec["parallel"]
    if kind == "tpe":
        startup = min(10, max(parallel, spec["trials"] // 4))
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True, constant_liar=True
        )
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=min(parallel, spec["trials"]))
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=parallel)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {kind!r}")


def open_study(spec: Dict[str, Any], journal: str, generation: int):
    """The study in ``journal`` (created when new), with this generation's sampler."""
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))
    return optuna.create_study(
        storage=storage,
        sampler=make_sampler(spec, generation),
        study_name=spec["name"],
        directions=["maximize"] * len(spec["objectives"]),
        load_if_exists=True,
    )


def suggest(trial, spec: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """A trial's method (a categorical choice when the search has several) and its values."""
    methods = spec["methods"]
    method = trial.suggest_categorical("method", methods) if len(methods) > 1 else methods[0]
    values: Dict[str, Any] = {}
    for d in spec["dimensions"][method]:
        if d["kind"] == "categorical":
            values[d["name"]] = trial.suggest_categorical(d["name"], d["choices"])
        elif d["kind"] == "int":
            values[d["name"]] = trial.suggest_int(d["name"], d["low"], d["high"], log=d.get("log", False))
        else:
            values[d["name"]] = trial.suggest_float(d["name"], d["low"], d["high"], log=d.get("log", False))
    return method, values


# ------------------------------------------------------------------------------- scores


def task_score(res: Dict[str, Any], task: str) -> Tuple[Optional[float], Optional[str], str]:
    """(value of the task's primary metric, its name, why there is none) from an lm-eval results dict;
    the value is negated where lower is better."""
    if (res.get("mergelab") or {}).get("skipped"):
        return None, None, "skipped"
    problem = partial_result(res)
    if problem:
        return None, None, f"partial: {problem}"
    rows = [r for r in harness_rows(res, "trial", task) if r["task"] == task and r["primary"]]
    if not rows or not math.isfinite(rows[0]["value"]):
        return None, None, f"no value for {task}"
    r = rows[0]
    sign = 1.0 if r["higher_is_better"] else -1.0
    return sign * r["value"], f"{r['metric']},{r['filter']}", ""


def _read(path: Optional[str]) -> Dict[str, Any]:
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def trial_scores(spec: Dict[str, Any], dev_file: Optional[str], probe_file: Optional[str] = None) -> Dict[str, Any]:
    """A trial's objective values, task metrics and competence scores from its dev evaluation
    (rule search_eval) and dev probing (search_probe)."""
    dev, probe = _read(dev_file), _read(probe_file)
    metrics: Dict[str, Optional[float]] = {}
    reasons = []
    for task in objective_parts(spec["objectives"], "tasks"):
        res = (dev.get("tasks") or {}).get(task)
        if res is None:
            value, reason = None, f"no result for {task}"
        else:
            value, _, reason = task_score(res, task)
        metrics[task] = value
        if reason:
            reasons.append(reason)
    for comp in objective_parts(spec["objectives"], "competences"):
        value = ((probe.get("competences") or {}).get(comp) or {}).get("mean_f1")
        value = None if value is None or not math.isfinite(value) else float(value)
        metrics[f"holmes:{comp}"] = value
        if value is None:
            reasons.append(f"no Holmes F1 for {comp}")
    if reasons:
        return {"values": None, "metrics": metrics, "reason": "; ".join(dict.fromkeys(reasons))}
    values = [
        sum(w * metrics[t] for t, w in o["tasks"].items())
        + sum(w * metrics[f"holmes:{c}"] for c, w in o.get("competences", {}).items())
        for o in spec["objectives"]
    ]
    return {"values": values, "metrics": metrics, "reason": ""}


Files = Dict[int, Tuple[Optional[str], Optional[str]]]  # trial number -> (dev results, dev probing)


def dev_files(numbers: Sequence[int], dev: Sequence[str], probe: Sequence[str]) -> Files:
    """trial number -> (its dev results, its dev probing) from a job's inputs (lists in trial order;
    empty where the objectives need none)."""
    dev, probe = list(dev), list(probe)
    for given in (dev, probe):
        if given and len(given) != len(numbers):
            raise ValueError(f"{len(numbers)} trials, {len(given)} dev results")
    return {n: (dev[i] if dev else None, probe[i] if probe else None) for i, n in enumerate(numbers)}


def tell(study, spec: Dict[str, Any], numbers: Sequence[int], files: Files) -> None:
    """Tell the study the scores of trials ``numbers`` (files: see dev_files)."""
    optuna = _optuna()
    for n in numbers:
        s = trial_scores(spec, *files[n])

        if s["values"] is None:
            log.warning("trial %d failed: %s", n, s["reason"])
            study.tell(n, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        else:
            log.info(
                "trial %d: %s", n, ", ".join(f"{o['name']} {v:.4g}" for o, v in zip(spec["objectives"], s["values"]))
            )
            study.tell(n, s["values"], skip_if_finished=True)


def _start_journal(previous: Optional[str], out: str) -> None:
    """``out`` as a copy of the previous generation's journal (none: a new study); a journal
    left by a killed job is replaced."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(out):
        os.unlink(out)
    if previous:
        shutil.copyfile(previous, out)


def propose(job, previous_journal: Optional[str], files: Files, proposals_out: str, journal_out: str) -> None:
    """One generation: tell the previous generation's scores, ask for ``job.numbers`` trials."""
    spec = job.search
    _start_journal(previous_journal, journal_out)
    study = open_study(spec, journal_out, job.generation)
    if job.told:
        tell(study, spec, job.told, files)
    trials = []
    for number, model in zip(job.numbers, job.models):
        trial = study.ask()
        if trial.number != number:
            raise RuntimeError(
                f"the journal has {trial.number} trials before generation {job.generation}, expected {number}: "
                f"delete results/search/{spec['name']}/ to start the search again"
            )
        method, values = suggest(trial, spec)
        trials.append({"number": number, "model": model, "method": method, "values": values})
        log.info("trial %d (%s): %s %s", number, model, method, json.dumps(values, sort_keys=True))
    _write_json(proposals_out, {"search": spec["name"], "generation": job.generation, "trials": trials})


def _write_json(path: str, data: Any) -> None:
    with atomic_file(path, encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")


# ------------------------------------------------------------------------------- summary


def summarize(
    job,
    previous_journal: str,
    files: Files,
    trials_out: str,
    best_out: str,
    journal_out: str,
) -> None:
    """Tell the last generation's scores; write trials.csv, best.yaml and the whole study's journal.
    ``files``: every trial's dev results (see dev_files)."""
    spec = job.search
    _start_journal(previous_journal, journal_out)
    study = open_study(spec, journal_out, len(files))
    tell(study, spec, job.told, files)
    frame = trials_table(study, spec, files)
    with atomic_file(trials_out, newline="", encoding="utf-8") as fh:
        frame.to_csv(fh, index=False)
    best = best_trials(study, spec, job.recipe)
    _write_yaml(best_out, best, spec)


def _values_of(trial, spec) -> Tuple[str, Dict[str, Any]]:
    """A finished trial's sampled values by dimension name, and its method."""
    method = trial.params.get("method", spec["methods"][0])
    return method, {d["name"]: trial.params[d["name"]] for d in spec["dimensions"][method]}


def trials_table(study, spec: Dict[str, Any], files: Files):
    """trials.csv: one row per trial: its number, generation, merge id, method, sampled values,
    objectives, dev metric per task, state and why it failed."""
    import pandas as pd

    dims = list(dict.fromkeys(d["name"] for ds in spec["dimensions"].values() for d in ds))
    tasks = objective_parts(spec["objectives"], "tasks")
    tasks += [f"holmes:{c}" for c in objective_parts(spec["objectives"], "competences")]
    rows = []
    for t in study.trials:
        method = t.params.get("method", spec["methods"][0])
        row: Dict[str, Any] = {
            "search": spec["name"],
            "trial": t.number,
            "generation": t.number // spec["parallel"],
            "model": trial_id(spec["name"], t.number),
            "method": method,
        }
        for d in dims:
            row[d] = t.params.get(d, math.nan)
        values = t.values if t.values is not None else [math.nan] * len(spec["objectives"])
        for o, v in zip(spec["objectives"], values):
            row[o["name"]] = v
        scores = trial_scores(spec, *files[t.number]) if t.number in files else {"metrics": {}, "reason": ""}
        for task in tasks:
            v = scores["metrics"].get(task)
            row[f"dev:{task}"] = math.nan if v is None else v
        row["state"] = t.state.name.lower()
        row["reason"] = scores["reason"]
        rows.append(row)
    return pd.DataFrame(rows)


def best_trials(study, spec: Dict[str, Any], recipe: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The best trial (one objective; the first of equals), or the Pareto set (several), as recipes."""
    done = [t for t in study.trials if t.values is not None]
    if not done:
        return []
    if len(spec["objectives"]) == 1:
        top = max(t.values[0] for t in done)
        chosen = [min((t for t in done if t.values[0] == top), key=lambda t: t.number)]
    else:
        chosen = sorted(pareto_set(done), key=lambda t: t.number)
    out = []
    for t in chosen:
        method, values = _values_of(t, spec)
        params = trial_parameters(recipe["parameters"], spec["dimensions"], method, values)
        model = trial_id(spec["name"], t.number)
        out.append(
            {
                "trial": t.number,
                "model": model,
                "values": {o["name"]: v for o, v in zip(spec["objectives"], t.values)},
                "recipe": best_recipe(recipe, f"{spec['name']}-t{t.number:03d}", method, params),
            }
        )
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is at least as good as b in every objective (all maximised) and better in one."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_set(trials):
    """The trials that no other trial dominates."""
    return [t for t in trials if not any(dominates(o.values, t.values) for o in trials if o is not t)]


def _write_yaml(path: str, best: List[Dict[str, Any]], spec: Dict[str, Any]) -> None:
    import yaml

    several = len(spec["objectives"]) > 1
    head = (
        f"# search {spec['name']}: {spec['sampler']}, {spec['trials']} trials, seed {spec['seed']}.\n"
        + (
            "# The Pareto set: no other trial is at least as good in every objective and better in one.\n"
            if several
            else "# The best trial on the dev subset (the first of equals).\n"
        )
        + "# To keep its weights or push it, copy a recipe into `merges:` (it makes the same merge).\n"
    )
    doc = {
        "search": spec["name"],
        "objectives": spec["objectives"],
        "best": best,
        "merges": [b["recipe"] for b in best],
    }

    class Dumper(yaml.SafeDumper):  # each recipe written out twice, never as a YAML alias
        def ignore_aliases(self, data):
            return True

    with atomic_file(path, encoding="utf-8") as fh:
        fh.write(head)
        yaml.dump(doc, fh, Dumper=Dumper, sort_keys=False)


def dev_results(results: Dict[str, Dict[str, Any]], out: str) -> None:
    """A trial's dev evaluation: task -> lm-eval results dict, one JSON."""
    from lm_eval.utils import handle_non_serializable

    with atomic_file(out, encoding="utf-8") as fh:
        json.dump({"tasks": results}, fh, indent=1, default=handle_non_serializable)
        fh.write("\n")


# ------------------------------------------------------------------------------- Holmes


def probe_datasets(manifest: List[Dict[str, str]], competences: Sequence[str]) -> List[str]:
    """The manifest's datasets of these competences (overall: every dataset of known competence)."""
    want = set(competences)
    return [
        r["probing_dataset"]
        for r in manifest
        if r.get("competence", UNKNOWN) != UNKNOWN and ("overall" in want or r.get("competence") in want)
    ]


def competence_scores(rows: List[Dict[str, Any]], manifest: List[Dict[str, str]], competences: Sequence[str]):
    """competence -> {mean_f1, datasets}: the mean over its datasets of each one's macro F1 averaged
    over the probe seeds, as holmes_competences.csv's mean_f1 (regression datasets, Pearson, apart)."""
    comp_of = {r["probing_dataset"]: r.get("competence") for r in manifest}
    per_dataset: Dict[str, List[float]] = {}
    for r in rows:
        if r.get("metric") == "macro_f1" and r.get("score") is not None and math.isfinite(float(r["score"])):
            per_dataset.setdefault(r["probing_dataset"], []).append(float(r["score"]))
    means = {d: sum(v) / len(v) for d, v in per_dataset.items()}
    out = {}
    for comp in competences:
        chosen = [m for d, m in means.items() if comp == "overall" or comp_of.get(d) == comp]
        out[comp] = {"mean_f1": sum(chosen) / len(chosen) if chosen else None, "datasets": len(chosen)}
    return out


def write_probe(scores: Dict[str, Any], rows: List[Dict[str, Any]], out: str) -> None:
    with atomic_file(out, encoding="utf-8") as fh:
        json.dump({"competences": scores, "rows": rows}, fh, indent=1, default=str)
        fh.write("\n")
