"""Merge search (issue 20): the config's checks, Optuna's loop generation by generation (seeded,
resumable, Pareto sets), and a real search through Snakemake on tiny models."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import fake_model_dir, planned_jobs, snakemake, snakemake_together, write_config
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment
from mergelab.plan.merge_jobs import merge_records, merges_table

TASKS = {"mergelab_arithmetic": "exact_match", "mergelab_categories": "acc"}


def search_cfg(**over) -> dict:
    s = {
        "name": "tune",
        "models": ["a", "b"],
        "base": "base",
        "methods": ["ties", "task_arithmetic"],
        "space": {"weight": {"a": [0.1, 1.5], "b": [0.1, 1.5]}, "density": {"low": 0.2, "high": 1.0, "log": True}},
        "objective": {"tasks": {"mergelab_arithmetic": 1.0, "mergelab_categories": 0.5}},
        "trials": 6,
        "parallel": 2,
        "limit": 8,
    }
    s.update(over)
    return s


def plan_in(wd: Path, *searches: dict, holmes: bool = False):
    for n in ("base", "a", "b"):
        fake_model_dir(wd / n)
    cfg = {
        "models": {n: {"path": n} for n in ("base", "a", "b")},
        "merges": [],
        "search": list(searches),
        "harness": {"tasks": ["mergelab_categories"]},
        "holmes": {"activate": True, "version": "demo"} if holmes else {"activate": False},
    }
    return load_experiment(cfg, "exp.yaml", workdir=wd, lm_eval_tasks=lambda: {"mmlu": "group"})


# --------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "over,key,message",
    [
        ({"space": {"weight": [1.0, 0.5]}}, "search[0].space.weight", "empty range"),
        ({"space": {"weight": [0.5, 0.5]}}, "search[0].space.weight", "empty range"),
        ({"space": {"t": [0.1, 0.9]}}, "search[0].space.t", "unknown parameter for ties, task_arithmetic"),
        ({"space": {"density": {"low": 0, "high": 1, "log": True}}}, "search[0].space.density", "log range"),
        ({"space": {"weight": {"a": [0.1, 1], "zz": [0.1, 1]}}}, "search[0].space.weight.zz", "not one of the models"),
        ({"space": {"weight": {"choices": []}}}, "search[0].space.weight.choices", "non-empty list"),
        ({"space": {"weight": "high"}}, "search[0].space.weight", "give a range"),
        (
            {"objective": {"tasks": {"nosuchtask": 1.0}}},
            "search[0].objective.tasks.nosuchtask",
            "unknown lm-eval task 'nosuchtask'",
        ),
        ({"objective": {"tasks": {"mmlu": 0}}}, "search[0].objective.tasks.mmlu", "non-zero number"),
        ({"objective": [{"tasks": {"mmlu": 1}}]}, "search[0].objective[0].name", "name every objective"),
        ({"parallel": 8}, "search[0].parallel", "8 trials per generation"),
        (
            {
                "sampler": "cmaes",
                "objective": [{"name": "x", "tasks": {"mmlu": 1}}, {"name": "y", "tasks": {"mmlu": -1}}],
            },
            "search[0].sampler",
            "cmaes optimises one objective",
        ),
        ({"sampler": "nsga2", "parallel": 1}, "search[0].parallel", "at least 2"),
        ({"base": None}, "search[0].base", "ties needs a base model"),
        ({"models": ["a", "nope"]}, "search[0].models[1]", "unknown model 'nope'"),
        ({"name": "a"}, "search[0].name", "also the name of a model"),
        ({"parameters": {"density": 0.5}}, "search[0].parameters.density", "either sampled or fixed"),
        ({"limit": 2.5}, "search[0].limit", "must be whole"),
        (
            {"objective": {"competences": {"syntax": 1.0}}},
            "search[0].objective.competences.syntax",
            "Holmes probing, which is off",
        ),
        ({"objective": {"tasks": {}, "competences": {}}}, "search[0].objective.tasks", "give harness tasks"),
    ],
)
def test_a_bad_search_stops_before_any_job_with_one_line_naming_the_key(tmp_path, over, key, message):
    with pytest.raises(ConfigError) as err:
        plan_in(tmp_path, search_cfg(**over))
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"exp.yaml: {key}: "), text
    assert message in text, text


def test_competences_are_holmes_own(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"search\[0\]\.objective\.competences\.sintax: unknown Holmes competence 'sintax'; did you mean syntax",
    ):
        plan_in(tmp_path, search_cfg(objective={"competences": {"sintax": 1.0}}), holmes=True)
    exp = plan_in(tmp_path, search_cfg(objective={"competences": {"syntax": 1.0, "overall": 0.5}}), holmes=True)
    plan = exp.searches["tune"]
    assert plan.tasks == [] and plan.competences == ["syntax", "overall"]
    assert plan.dev_inputs([0]) == {"dev": [], "probe": ["results/search/tune/dev/tune_t000.holmes.json"]}
    job = exp.job("search_probe", search="tune", model="tune_t000")
    assert job.competences == ["syntax", "overall"] and job.model_path == str(tmp_path / "results/models/tune_t000")
    with pytest.raises(ValueError, match="not a trial of search"):
        exp.job("search_eval", search="tune", model="tune_t000")  # no task to evaluate


def test_a_competence_score_is_the_mean_f1_of_its_datasets():
    from mergelab.search import competence_scores, probe_datasets

    manifest = [
        {"probing_dataset": "d1", "competence": "syntax"},
        {"probing_dataset": "d2", "competence": "syntax"},
        {"probing_dataset": "d3", "competence": "morphology"},
        {"probing_dataset": "d4", "competence": "unknown"},
    ]
    rows = [
        {"probing_dataset": "d1", "metric": "macro_f1", "score": 0.5},
        {"probing_dataset": "d1", "metric": "macro_f1", "score": 0.7},  # another seed: d1 is 0.6
        {"probing_dataset": "d2", "metric": "macro_f1", "score": 0.8},
        {"probing_dataset": "d3", "metric": "macro_f1", "score": 0.2},
        {"probing_dataset": "d3", "metric": "pearson", "score": 0.9},  # kept apart, as in the tables
    ]
    assert probe_datasets(manifest, ["syntax"]) == ["d1", "d2"]
    assert probe_datasets(manifest, ["overall"]) == ["d1", "d2", "d3"]  # unknown competence left out
    got = competence_scores(rows, manifest, ["syntax", "morphology", "overall", "discourse"])
    assert got["syntax"] == {"mean_f1": pytest.approx(0.7), "datasets": 2}
    assert got["morphology"]["mean_f1"] == pytest.approx(0.2)
    assert got["overall"]["mean_f1"] == pytest.approx((0.6 + 0.8 + 0.2) / 3)
    assert got["discourse"] == {"mean_f1": None, "datasets": 0}


def test_a_range_is_checked_against_the_search_s_own_methods(tmp_path):
    """t is in [0, 1] for slerp but any t > 0 for nearswap: a range suits every method of the
    search that takes the parameter, not whichever method of mergekit defines it first."""
    near = plan_in(tmp_path / "near", search_cfg(methods=["nearswap"], space={"t": [0.5, 2.0]}))
    assert [d.high for d in near.searches["tune"].dimensions["nearswap"]] == [2.0]
    with pytest.raises(ConfigError, match=r"search\[0\]\.space\.t: t must be > 0, got 0"):
        plan_in(tmp_path / "both", search_cfg(methods=["slerp", "nearswap"], space={"t": [0, 1]}))
    with pytest.raises(ConfigError, match=r"search\[0\]\.space\.t: t must be <= 1, got 2"):
        plan_in(tmp_path / "slerp", search_cfg(methods=["slerp"], space={"t": [0.5, 2.0]}))


def test_the_schema_refuses_what_no_search_can_use(tmp_path):
    with pytest.raises(ConfigError, match=r"search\[0\].*sampler"):
        plan_in(tmp_path, search_cfg(sampler="bayes"))
    with pytest.raises(ConfigError, match=r"search\[0\].*methods"):
        plan_in(tmp_path, search_cfg(methods=["moe"]))


def test_a_search_plans_trials_with_stable_ids_and_its_generations(tmp_path):
    exp = plan_in(tmp_path, search_cfg(trials=5, parallel=2))
    plan = exp.searches["tune"]
    assert plan.trial_ids == [f"tune_t00{i}" for i in range(5)]
    assert plan.generations == 3 and plan.numbers(2) == [4]
    assert exp.targets("searches") == [
        "results/search/tune/trials.csv",
        "results/search/tune/best.yaml",
        "results/search/tune/journal.log",
    ]
    assert list(exp.storage.released) == plan.trial_ids  # keep_trials: false, the default
    assert plan_in(tmp_path / "k", search_cfg(keep_trials=True)).storage.released == ()
    # a dimension per model and parameter; task_arithmetic takes density too (mergekit's DARE-less sparsify)
    names = {m: [d.name for d in ds] for m, ds in plan.dimensions.items()}
    assert names == {
        "ties": ["weight.a", "weight.b", "density"],
        "task_arithmetic": ["weight.a", "weight.b", "density"],
    }


def test_a_proposed_trial_is_an_ordinary_merge_of_its_values(tmp_path):
    exp = plan_in(tmp_path, search_cfg())
    proposals = tmp_path / "results/search/tune/gen0/proposals.json"
    proposals.parent.mkdir(parents=True)
    trials = [
        {
            "number": 0,
            "model": "tune_t000",
            "method": "ties",
            "values": {"weight.a": 0.3, "weight.b": 1.2, "density": 0.4},
        },
        {
            "number": 1,
            "model": "tune_t001",
            "method": "task_arithmetic",
            "values": {"weight.a": 1, "weight.b": 1, "density": 1},
        },
    ]
    proposals.write_text(json.dumps({"search": "tune", "generation": 0, "trials": trials}))
    spec = exp.merge_spec("tune_t000")
    cfg = spec.mergekit_config
    assert cfg["merge_method"] == "ties" and cfg["base_model"] == str(tmp_path / "base")
    assert [m["parameters"] for m in cfg["models"]] == [
        {"weight": 0.3, "density": 0.4},
        {"weight": 1.2, "density": 0.4},
    ]
    assert spec.recipe == "tune" and spec.inputs == ["base", "a", "b"]
    rows = merge_records(exp)
    assert [(r["model"], r["search"], r["trial"]) for r in rows] == [("tune_t000", "tune", 0), ("tune_t001", "tune", 1)]
    assert merges_table(exp).splitlines()[0].endswith("\tsearch\ttrial")
    with pytest.raises(ValueError, match="not proposed yet"):
        exp.merge_spec("tune_t002")


# --------------------------------------------------------------------------- the loop, without Snakemake


def landscape(values: dict, method: str) -> dict:
    """A made-up task score per objective task for a trial's values: arithmetic peaks at
    weight.a = 1.0, categories at weight.b = 1.0 (so the two conflict through density)."""
    a, b, d = values.get("weight.a", 0.5), values.get("weight.b", 0.5), values.get("density", 0.5)
    bonus = 0.05 if method == "ties" else 0.0
    return {
        "mergelab_arithmetic": max(0.0, 1 - (a - 1.0) ** 2 - 0.3 * d) + bonus,
        "mergelab_categories": max(0.0, 1 - (b - 1.0) ** 2 - 0.3 * (1 - d)),
    }


def lm_eval_result(task: str, metric: str, value: float, n: int = 8) -> dict:
    return {
        "results": {task: {"alias": task, f"{metric},none": value, f"{metric}_stderr,none": 0.01}},
        "higher_is_better": {task: {metric: True}},
        "n-samples": {task: {"original": 40, "effective": n}},
        "mergelab": {"settings": {"limit": 8}},
    }


def fake_dev(path: Path, scores: dict, skipped: bool = False) -> None:
    res = {t: lm_eval_result(t, TASKS[t], v) for t, v in scores.items()}
    if skipped:
        res = {t: {"mergelab": {"skipped": True}} for t in scores}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tasks": res}))


def run_loop(exp, name="tune", stop_after=None, fail=()):
    """Every generation of a search as Snakemake would run it: propose, then fake dev results
    (and dev probing, for competences), then the next; then the summary. ``stop_after``: stop
    after proposing that generation."""
    from mergelab.search import dev_files, propose, summarize

    plan, wd = exp.searches[name], exp.workdir

    def files(numbers):
        given = plan.dev_inputs(numbers)
        return dev_files(numbers, [str(wd / p) for p in given["dev"]], [str(wd / p) for p in given["probe"]])

    for g in range(plan.generations):
        if (wd / plan.proposals(g)).is_file():
            continue  # done before (a resumed search)
        job = exp.job("search_propose", search=name, generation=str(g))
        previous = str(wd / plan.journal(g - 1)) if g else None
        propose(job, previous, files(job.told), str(wd / plan.proposals(g)), str(wd / plan.journal(g)))
        for t in json.loads((wd / plan.proposals(g)).read_text())["trials"]:
            scores = landscape(t["values"], t["method"])
            fake_dev(wd / plan.dev_result(t["model"]), scores, skipped=t["number"] in fail)
            if plan.competences:
                fake_probe(wd / plan.probe_result(t["model"]), scores)
        if stop_after == g:
            return None
    job = exp.job("search_summary", search=name)
    out = wd / "results/search" / name
    last = str(wd / plan.journal(plan.generations - 1))
    every = files(list(range(plan.trials)))
    summarize(job, last, every, str(out / "trials.csv"), str(out / "best.yaml"), str(out / "journal.log"))
    return pd.read_csv(out / "trials.csv"), yaml.safe_load((out / "best.yaml").read_text())


def fake_probe(path: Path, scores: dict) -> None:
    """A trial's dev probing: syntax F1 follows categories, morphology is flat."""
    comps = {"syntax": {"mean_f1": 0.5 + 0.3 * scores["mergelab_categories"]}, "morphology": {"mean_f1": 0.6}}
    path.write_text(json.dumps({"competences": comps, "rows": []}))


TWO = [
    {"name": "arith", "tasks": {"mergelab_arithmetic": 1.0}},
    {"name": "cats", "tasks": {"mergelab_categories": 1.0}},
]


@pytest.mark.parametrize("sampler,objective", [("tpe", None), ("cmaes", None), ("random", None), ("nsga2", TWO)])
def test_the_same_seed_gives_the_same_trials(tmp_path, sampler, objective):
    over = {"sampler": sampler, "trials": 6, "parallel": 2}
    if objective:
        over["objective"] = objective
    runs = []
    for i, seed in enumerate((3, 3, 4)):
        exp = plan_in(tmp_path / f"run{i}", search_cfg(seed=seed, **over))
        trials, best = run_loop(exp)
        runs.append(trials.drop(columns=["reason"]))
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert not runs[0].equals(runs[2])  # another seed, other trials
    assert list(runs[0]["trial"]) == list(range(6)) and list(runs[0]["generation"]) == [0, 0, 1, 1, 2, 2]
    assert (runs[0]["state"] == "complete").all()


def test_scores_are_the_weighted_primary_metrics_and_failures_are_kept(tmp_path):
    exp = plan_in(tmp_path, search_cfg(trials=4, parallel=2))
    trials, best = run_loop(exp, fail={2})
    ok = trials[trials["state"] == "complete"]
    expect = ok["dev:mergelab_arithmetic"] + 0.5 * ok["dev:mergelab_categories"]
    assert ok["objective"].tolist() == pytest.approx(expect.tolist())
    for _, row in ok.iterrows():  # the dev metrics are the made-up landscape's
        values = {c: row[c] for c in ("weight.a", "weight.b", "density")}
        assert row["dev:mergelab_arithmetic"] == pytest.approx(landscape(values, row["method"])["mergelab_arithmetic"])
    failed = trials.set_index("trial").loc[2]
    assert failed["state"] == "fail" and failed["reason"] == "skipped" and math.isnan(failed["objective"])
    top = ok.loc[ok["objective"].idxmax()]
    assert [b["trial"] for b in best["best"]] == [int(top["trial"])]
    b = best["best"][0]
    assert b["values"] == {"objective": pytest.approx(top["objective"])}
    # the recipe makes the same merge: paste it into merges: and it expands to that trial's mergekit config
    recipe = dict(b["recipe"])
    cfg = {
        "models": {n: {"path": n} for n in ("base", "a", "b")},
        "merges": [recipe],
        "harness": {"tasks": []},
        "holmes": {"activate": False},
    }
    (made,) = load_experiment(cfg, "again.yaml", workdir=tmp_path).merges.values()
    assert made.mergekit_config == exp.merge_spec(b["model"]).mergekit_config


def test_an_interrupted_search_resumes_where_it_stopped(tmp_path):
    straight, _ = run_loop(plan_in(tmp_path / "straight", search_cfg(trials=6, parallel=2)))
    wd = tmp_path / "stopped"
    exp = plan_in(wd, search_cfg(trials=6, parallel=2))
    assert run_loop(exp, stop_after=1) is None
    before = {p: p.stat().st_mtime_ns for p in (wd / "results/search/tune").rglob("*") if p.is_file()}
    # a killed job left a half-written journal of generation 2: it is replaced, not appended to
    killed = wd / exp.searches["tune"].journal(2)
    killed.parent.mkdir(parents=True)
    killed.write_text("garbage")
    resumed, _ = run_loop(plan_in(wd, search_cfg(trials=6, parallel=2)))
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before  # generations 0 and 1 untouched: their trials are not redone
    pd.testing.assert_frame_equal(resumed, straight)


def test_tasks_and_competences_score_together(tmp_path):
    objective = [
        {"name": "arith", "tasks": {"mergelab_arithmetic": 1.0}},
        {"name": "ling", "tasks": {"mergelab_categories": 0.5}, "competences": {"syntax": 2.0}},
    ]
    exp = plan_in(tmp_path, search_cfg(sampler="nsga2", objective=objective, trials=4, parallel=2), holmes=True)
    trials, best = run_loop(exp)
    assert (trials["state"] == "complete").all()
    assert trials["ling"].tolist() == pytest.approx(
        (0.5 * trials["dev:mergelab_categories"] + 2.0 * trials["dev:holmes:syntax"]).tolist()
    )
    assert trials["dev:holmes:syntax"].tolist() == pytest.approx(
        (0.5 + 0.3 * trials["dev:mergelab_categories"]).tolist()
    )


def test_several_objectives_give_the_pareto_set(tmp_path):
    from mergelab.search import dominates

    exp = plan_in(tmp_path, search_cfg(sampler="nsga2", objective=TWO, trials=10, parallel=2))
    trials, best = run_loop(exp)
    points = {int(r.trial): (r.arith, r.cats) for r in trials.itertuples()}
    chosen = [b["trial"] for b in best["best"]]
    assert chosen and len(best["merges"]) == len(chosen)
    for t in chosen:  # no trial dominates a member
        assert not any(dominates(points[o], points[t]) for o in points)
    for t in set(points) - set(chosen):  # every other trial is dominated
        assert any(dominates(points[o], points[t]) for o in points)
    assert all(set(b["values"]) == {"arith", "cats"} for b in best["best"])


# --------------------------------------------------------------------------- through Snakemake


def tiny_search_config(wd: Path, tiny_models: dict) -> Path:
    cfg = {
        "models": {
            "base": {"path": str(tiny_models["base"])},
            "a": {"path": str(tiny_models["alpha"])},
            "b": {"path": str(tiny_models["beta"])},
        },
        "merges": [],
        "search": [
            {
                "name": "tune",
                "models": ["a", "b"],
                "base": "base",
                "methods": ["task_arithmetic", "ties"],
                "space": {"weight": [0.2, 1.5], "density": [0.3, 1.0]},
                "objective": {
                    "tasks": {"mergelab_text_ppl": 1.0, "mergelab_categories": 10.0},
                    "competences": {"morphology": 1.0},
                },
                "limit": 4,
                "trials": 4,
                "parallel": 2,
                "dtype": "float32",
                "seed": 7,
            }
        ],
        "evaluation": {"models": []},  # only the search's best trial: the parents are not needed here
        "harness": {
            "jobs": "per_model",
            "tasks": ["mergelab_categories"],
            "settings": {"batch_size": 8, "bootstrap_iters": 100},
        },
        "holmes": {"activate": True, "version": "demo", "seeds": [0]},
        "stats": {"bootstrap": 200},
    }
    return write_config(wd, cfg)


def rules_run(proc) -> dict:
    """rule -> the wildcards of each job a run ran (from its log)."""
    return planned_jobs(proc.stderr)


@pytest.mark.workflow
def test_a_search_runs_through_snakemake_resumes_and_is_deterministic(tmp_path, tiny_models):
    wd, other = tmp_path / "stopped", tmp_path / "again"
    path = tiny_search_config(wd, tiny_models)
    # stopped once generation 0 is merged and evaluated: the target is generation 1's proposals;
    # at once, the same config and seed in another folder (compared below, for determinism)
    gen1 = "results/search/tune/gen1/proposals.json"
    snakemake_together((wd, path, gen1), (other, tiny_search_config(other, tiny_models), gen1))
    first = {p: p.stat().st_mtime_ns for p in (wd / "results/search/tune").rglob("*") if p.is_file()}
    proc = snakemake(wd, path, check=True)
    ran = rules_run(proc)
    assert sorted(ran["search_eval"]) == ["search=tune, model=tune_t002", "search=tune, model=tune_t003"], ran
    assert sorted(ran["merge_released"]) == ["model=tune_t002", "model=tune_t003"], ran
    assert all((p.stat().st_mtime_ns == t) for p, t in first.items())  # gen 0 and 1 untouched
    # finished: nothing reruns
    again = snakemake(wd, path, "-n", check=True)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    trials = pd.read_csv(wd / "results/search/tune/trials.csv")
    assert list(trials["model"]) == [f"tune_t00{i}" for i in range(4)] and (trials["state"] == "complete").all()
    merges = pd.read_csv(wd / "results/merges.tsv", sep="\t")
    assert list(merges["model"]) == list(trials["model"]) and list(merges["trial"]) == [0, 1, 2, 3]
    for row, m in zip(trials.itertuples(), merges.itertuples()):
        params = json.loads(m.parameters)
        assert m.method == row.method and params["weight"] == pytest.approx(row.weight)
        dev = json.loads((wd / f"results/search/tune/dev/{row.model}.json").read_text())["tasks"]
        ppl = dev["mergelab_text_ppl"]["results"]["mergelab_text_ppl"]["word_perplexity,none"]
        acc = dev["mergelab_categories"]["results"]["mergelab_categories"]["acc_norm,none"]
        assert dev["mergelab_categories"]["n-samples"]["mergelab_categories"]["effective"] == 4  # the dev subset
        probe = json.loads((wd / f"results/search/tune/dev/{row.model}.holmes.json").read_text())
        manifest = pd.read_csv(wd / "results/holmes/datasets-demo.tsv", sep="\t")
        morph = set(manifest.loc[manifest["competence"] == "morphology", "probing_dataset"])
        f1 = [r["score"] for r in probe["rows"] if r["metric"] == "macro_f1"]
        assert {r["probing_dataset"] for r in probe["rows"]} == morph  # only the competence's datasets
        assert probe["competences"]["morphology"]["mean_f1"] == pytest.approx(sum(f1) / len(f1))  # one seed each
        assert row.objective == pytest.approx(-ppl + 10.0 * acc + probe["competences"]["morphology"]["mean_f1"])
    best = yaml.safe_load((wd / "results/search/tune/best.yaml").read_text())["best"]
    top = trials.loc[trials["objective"].idxmax()]
    assert [b["model"] for b in best] == [top["model"]]
    # the best trial, evaluated on the full task, is in the tables like any merge
    harness = pd.read_csv(wd / "results/tables/harness.csv")
    mine = harness[harness["model"] == top["model"]]
    assert set(mine["role"]) == {"merge"} and set(mine["recipe"]) == {"tune"}
    assert (mine["n_samples"] > 4).all() and (mine["status"] == "ok").all()
    assert (wd / "results/plots/search/tune.png").stat().st_size > 0
    holmes = pd.read_csv(wd / "results/tables/holmes.csv")
    assert set(holmes["model"]) == {top["model"]}  # probed in full (every dataset) like any merge
    assert set(holmes["probing_dataset"]) == set(manifest["probing_dataset"])
    assert not (wd / "results/models").exists() or not any((wd / "results/models").iterdir())  # trials deleted

    # the same config and seed in another folder: the same trials, up to generation 1, which
    # generation 0's scores decide (dev evaluations and probing are deterministic on the CPU)
    for g in (0, 1):
        mine = json.loads((wd / f"results/search/tune/gen{g}/proposals.json").read_text())
        assert json.loads((other / f"results/search/tune/gen{g}/proposals.json").read_text()) == mine
    shutil.rmtree(other)
