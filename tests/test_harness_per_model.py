"""harness.jobs: per_model (issue 17): one job per model, one model load, the same files as per_task."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from conftest import (
    UNKNOWN_ARCHITECTURE,
    bad_task_folder,
    fake_model_dir,
    planned_jobs,
    snakemake,
    snakemake_together,
    unloadable_copy,
    write_config,
)

# A group of the user's own (pm_pair: one demo task) beside two demo tasks: the group and a plain
# task share an lm-eval run (both log samples), the third task runs alone (another limit).
PAIR_GROUP = "group: pm_pair\ntask:\n  - mergelab_arithmetic\nmetadata:\n  version: 1.0\n"
TASKS = ["pm_pair", "mergelab_categories", "mergelab_text_ppl"]
SETTINGS = {
    "tasks": TASKS,
    "include_path": ["mytasks"],
    "settings": {"batch_size": 8, "bootstrap_iters": 100},
    "task_settings": {
        "pm_pair": {"log_samples": True},
        "mergelab_categories": {"log_samples": True},
        "mergelab_text_ppl": {"limit": 12},
    },
}
# What differs between two runs of the same evaluation, whoever runs it: when it ran and for how
# long (lm-eval's date, start_time, end_time, total_evaluation_time_seconds; our wall_seconds, which
# per_model measures for the whole lm-eval run), and evaluated_with, the tasks that shared the
# run, which only per_model writes. Everything else (results, groups, group_subtasks, configs,
# versions, n-shot, n-samples, higher_is_better, task_hashes, config, environment) must be equal.
TIMING = {"date", "start_time", "end_time", "total_evaluation_time_seconds"}
OURS = {"wall_seconds", "evaluated_with"}


def cfg_for(models: dict, jobs: str | None) -> dict:
    h = copy.deepcopy(SETTINGS)
    if jobs:
        h["jobs"] = jobs
    return {"models": {n: {"path": str(p)} for n, p in models.items()}, "merges": [], "harness": h}


def workdir(tmp_path_factory, name: str):
    wd = tmp_path_factory.mktemp(name)
    (wd / "mytasks").mkdir()
    (wd / "mytasks" / "pm_pair.yaml").write_text(PAIR_GROUP)
    return wd


def comparable(res: dict) -> dict:
    res = {k: v for k, v in res.items() if k not in TIMING}
    res["mergelab"] = {k: v for k, v in res["mergelab"].items() if k not in OURS}
    return res


@pytest.fixture(scope="module")
def both(tmp_path_factory, tiny_models):
    models = {k: tiny_models[k] for k in ("base", "alpha")}
    out = {}
    for jobs in ("per_task", "per_model"):
        wd = workdir(tmp_path_factory, jobs)
        out[jobs] = (wd, cfg_for(models, None if jobs == "per_task" else jobs))
    snakemake_together(*((wd, write_config(wd, cfg)) for wd, cfg in out.values()))
    return out


# ---------------------------------------------------------------- workflow


@pytest.mark.workflow
def test_per_model_writes_what_per_task_writes(both):
    task_wd, _ = both["per_task"]
    model_wd, _ = both["per_model"]
    for model in ("base", "alpha"):
        for task in TASKS:
            a = json.loads((task_wd / "results" / "harness" / model / f"{task}.json").read_text())
            b = json.loads((model_wd / "results" / "harness" / model / f"{task}.json").read_text())
            assert comparable(a) == comparable(b), (model, task)
            assert b["mergelab"]["task"] == task and b["mergelab"]["model"] == model
            items = f"{task}.items.parquet"  # the per-item results, whichever job wrote them
            a = pd.read_parquet(task_wd / "results" / "harness" / model / items)
            assert not a.empty and a.equals(pd.read_parquet(model_wd / "results" / "harness" / model / items))
        for task in ("pm_pair", "mergelab_categories"):
            name = f"{task}.samples.jsonl"
            a = (task_wd / "results" / "harness" / model / name).read_text()
            assert a and a == (model_wd / "results" / "harness" / model / name).read_text(), (model, task)
        assert not (model_wd / "results" / "harness" / model / "mergelab_text_ppl.samples.jsonl").exists()
        b = json.loads((model_wd / "results" / "harness" / model / "pm_pair.json").read_text())
        assert set(b["results"]) == {"pm_pair", "mergelab_arithmetic"}  # the group and its subtask only
        assert b["group_subtasks"] == {"pm_pair": ["mergelab_arithmetic"]}
        assert b["mergelab"]["evaluated_with"] == ["pm_pair", "mergelab_categories"]
        log = model_wd / "logs" / "harness_eval_model" / f"{model}.log"
        assert log.is_file() and (model_wd / "benchmarks" / "harness_eval_model" / f"{model}.tsv").is_file()
    assert (model_wd / "results" / "tables" / "harness.csv").read_text() == (
        task_wd / "results" / "tables" / "harness.csv"
    ).read_text()


@pytest.mark.workflow
def test_per_model_plans_one_harness_job_per_model_and_reruns_nothing(both):
    wd, cfg = both["per_model"]
    out = snakemake(wd, write_config(wd, cfg, "same.yaml"), "-n", check=True)
    assert "Nothing to be done" in out.stdout + out.stderr
    fresh = wd / "fresh"
    (fresh / "mytasks").mkdir(parents=True)
    (fresh / "mytasks" / "pm_pair.yaml").write_text(PAIR_GROUP)
    jobs = planned_jobs(snakemake(fresh, write_config(fresh, cfg), "-n", check=True).stdout)
    assert sorted(jobs["harness_eval_model"]) == ["model=alpha", "model=base"]
    assert "harness_eval" not in jobs and "harness_eval_samples" not in jobs
    # the default (per_task) campaign: switching nothing reruns nothing
    wd, cfg = both["per_task"]
    out = snakemake(wd, write_config(wd, cfg, "same.yaml"), "-n", check=True)
    assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.workflow
def test_a_failing_task_fails_its_models_job_in_one_line_and_leaves_no_json(tmp_path, tiny_models):
    broken = unloadable_copy(tiny_models["alpha"], tmp_path / "broken")
    tasks_dir = bad_task_folder(tmp_path / "mytasks")
    cfg = {
        "models": {"base": {"path": str(tiny_models["base"])}, "broken": {"path": str(broken)}},
        "harness": {
            "jobs": "per_model",
            "tasks": ["mergelab_categories", "my_bad_task"],
            "include_path": ["mytasks"],
            "settings": {"batch_size": 8},
        },
    }
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "--keep-going")
    assert proc.returncode != 0
    err = proc.stderr
    # the local tasks are checked before the model loads: both models' jobs fail on the task, in one line
    line = f"mergelab: lm-eval could not load task 'my_bad_task' (data: {tasks_dir / 'bad.jsonl'}): ArrowInvalid"
    assert err.count(line) == 2 and "Traceback" not in err
    assert not list((tmp_path / "results" / "harness").rglob("*.json"))  # all or nothing per model
    cfg["harness"]["tasks"] = ["mergelab_categories"]  # then the broken model fails on its own, in one line
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "--keep-going")
    assert f"model type `{UNKNOWN_ARCHITECTURE}` but Transformers does not recognize" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "results" / "harness" / "base" / "mergelab_categories.json").is_file()
    assert not (tmp_path / "results" / "harness" / "broken").exists()
    assert (tmp_path / "logs" / "harness_eval_model" / "base.log").is_file()


# ---------------------------------------------------------------- plan (fast)


def plan_for(tmp_path, jobs: str, **harness):
    from mergelab.plan.experiment import load_experiment

    (tmp_path / "mytasks").mkdir(exist_ok=True)
    (tmp_path / "mytasks" / "pm_pair.yaml").write_text(PAIR_GROUP)
    models = {n: fake_model_dir(tmp_path / "models" / n) for n in ("a", "b")}
    cfg = cfg_for(models, jobs)
    cfg["harness"].update(harness)
    return load_experiment(cfg, "test.yaml", workdir=tmp_path)


def test_tasks_are_grouped_by_identical_settings(tmp_path):
    exp = plan_for(tmp_path, "per_model", model_settings={"b": {"num_fewshot": 1}})
    assert exp.harness.task_groups("a") == [["pm_pair", "mergelab_categories"], ["mergelab_text_ppl"]]
    job = exp.job("harness_eval_model", model="b")
    assert job.groups == [["pm_pair", "mergelab_categories"], ["mergelab_text_ppl"]]
    assert job.tasks == TASKS and job.local_tasks == TASKS and job.include_defaults is False
    assert all(job.settings[t] == exp.harness.settings_for("b", t) for t in TASKS)
    assert job.settings["pm_pair"].num_fewshot == 1
    params = exp.job_params("harness_eval_model", model="b")
    assert str(tmp_path) not in json.dumps(params)  # portable: a moved campaign reruns nothing


def test_per_model_resources_add_up_the_tasks(tmp_path):
    from mergelab.plan.rules import rule_resources

    exp = plan_for(tmp_path, "per_model", model_settings={"a": {"dtype": "float16"}})
    for model in ("a", "b"):
        per_task = [rule_resources(exp, "harness_eval", model=model, task=t) for t in TASKS]
        packed = rule_resources(exp, "harness_eval_model", model=model)
        assert packed["runtime"] == sum(r["runtime"] for r in per_task)
        assert packed["mem_mb"] == max(r["mem_mb"] for r in per_task) == per_task[0]["mem_mb"]
        assert packed["gpu"] == max(r["gpu"] for r in per_task)


def test_harness_eval_model_resources_set_the_whole_job(tmp_path):
    """resources.harness_eval counts once per task of a per_model job; resources.harness_eval_model
    sets the whole job (a 4-task 70B job needs one 24 h limit, not four)."""
    from mergelab.plan.experiment import load_experiment
    from mergelab.plan.rules import rule_resources

    plan_for(tmp_path, "per_model")  # the task folder and the models
    cfg = cfg_for({n: tmp_path / "models" / n for n in ("a", "b")}, "per_model")
    cfg["models"]["a"]["resources"] = {"harness_eval": {"runtime": 100}, "harness_eval_model": {"runtime": 1440}}
    cfg["models"]["b"]["resources"] = {"harness_eval": {"runtime": 100}}
    exp = load_experiment(cfg, "test.yaml", workdir=tmp_path)
    assert rule_resources(exp, "harness_eval_model", model="a")["runtime"] == 1440
    assert rule_resources(exp, "harness_eval_model", model="b")["runtime"] == 100 * len(TASKS)
    assert (
        rule_resources(exp, "harness_eval_model", model="a")["gpu"]
        == rule_resources(exp, "harness_eval", model="a", task=TASKS[0])["gpu"]
    )


def test_default_is_per_task(tmp_path):
    exp = plan_for(tmp_path, None)
    assert exp.harness.jobs == "per_task"
    assert exp.job("harness_eval", model="a", task="pm_pair").task == "pm_pair"


# ---------------------------------------------------------------- splitting and writing (fast)


def test_split_keeps_each_task_its_entries_and_a_group_its_subtasks():
    from mergelab.evaluate.harness import split_results

    combined = {
        "results": {"g": {"acc,none": 0.5}, "s1": {"acc,none": 0.5}, "t": {"acc,none": 1.0}},
        "groups": {"g": {"acc,none": 0.5}},
        "group_subtasks": {"g": ["s1"]},
        "configs": {"s1": {"task": "s1"}, "t": {"task": "t"}},
        "versions": {"g": 1.0, "s1": 2.0, "t": 3.0},
        "n-shot": {"g": 0, "s1": 0, "t": 0},
        "higher_is_better": {"g": {"acc": True}, "s1": {"acc": True}, "t": {"acc": True}},
        "n-samples": {"s1": {"original": 4, "effective": 4}, "t": {"original": 2, "effective": 2}},
        "samples": {"s1": [{"doc_id": 0}], "t": [{"doc_id": 0}]},
        "task_hashes": {"s1": "h1", "t": "h2"},
        "config": {"model": "hf"},
        "mergelab": {"task": None},
        "date": 1.0,
    }
    parts = split_results(combined, ["g", "t"])
    g, t = parts["g"], parts["t"]
    assert set(g["results"]) == {"g", "s1"} and g["groups"] == {"g": {"acc,none": 0.5}}
    assert g["group_subtasks"] == {"g": ["s1"]} and g["n-samples"] == {"s1": {"original": 4, "effective": 4}}
    assert set(t["results"]) == {"t"} and "groups" not in t and t["group_subtasks"] == {}
    assert (
        t["configs"] == {"t": {"task": "t"}}
        and t["samples"] == {"t": [{"doc_id": 0}]}
        and t["task_hashes"] == {"t": "h2"}
    )
    assert g["config"] == t["config"] == {"model": "hf"} and g["date"] == 1.0
    g["mergelab"]["task"] = "g"
    assert t["mergelab"]["task"] is None  # each task's own copy


def test_a_failed_write_leaves_no_file_of_the_job(tmp_path):
    from mergelab.evaluate.harness import write_model_results

    results = {"a": {"results": {"a": {}}, "samples": {"a": [{"doc_id": 0}]}}, "b": {"results": {"b": {}}}}
    paths = [str(tmp_path / "a.json")]  # b's output is missing: the job fails after writing a's
    with pytest.raises(KeyError):
        write_model_results(results, paths, [str(tmp_path / "a.samples.jsonl")])
    assert list(tmp_path.iterdir()) == []
    results["b"] = {"results": {"b": {}}}
    write_model_results(results, paths + [str(tmp_path / "b.json")], [str(tmp_path / "a.samples.jsonl")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.samples.jsonl", "b.json"]


def test_a_run_of_one_task_is_kept_whole_and_tags_run_alone():
    from types import SimpleNamespace

    from mergelab.evaluate.harness import split_results, tags_alone

    one = {"results": {"t1": {}, "t2": {}}, "mergelab": {}}  # e.g. a tag's tasks, named by no entry
    assert split_results(one, ["tag"]) == {"tag": one}
    kind = SimpleNamespace(name="TAG")
    tm = SimpleNamespace(task_index={"tag": SimpleNamespace(kind=kind), "a": SimpleNamespace(kind=None)})
    assert tags_alone([["a", "tag", "b"], ["tag2"]], tm) == [["a", "b"], ["tag"], ["tag2"]]
    assert tags_alone([["tag"]], tm) == [["tag"]]
