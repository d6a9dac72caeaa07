"""Task data from the Hub (rule harness_data), offline harness jobs, resumable evaluations (lm-eval's
request cache) and the partial-result guard (issue 18).

The Hub is tests/hubstub.py on 127.0.0.1 serving dataset repositories; lm-eval task YAMLs with
`dataset_path: <org>/<name>` read from it through the real `datasets` and `huggingface_hub`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, base_env, catalogue_of, harness_settings, planned_jobs, snakemake, write_config
from hubstub import HubStub
from mergelab.plan.errors import ConfigError
from mergelab.plan.experiment import load_experiment
from mergelab.plan.paths import WORKFLOW_TASKS
from mergelab.plan.tasks import hub_tasks

COUNTRIES = [
    ("France", "Paris"),
    ("Italy", "Rome"),
    ("Germany", "Berlin"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Austria", "Vienna"),
    ("Poland", "Warsaw"),
    ("Greece", "Athens"),
]


def capitals_rows(n: int, shift: int = 0) -> bytes:
    """n multiple-choice rows (four choices each) as JSON lines."""
    out = []
    for i in range(n):
        country, capital = COUNTRIES[(i + shift) % len(COUNTRIES)]
        others = [c for _, c in COUNTRIES if c != capital][(i % 4) : (i % 4) + 3]
        label = i % 4
        choices = others[:label] + [capital] + others[label:]
        out.append(json.dumps({"country": f"{country} {i}", "choices": choices, "label": label}))
    return ("\n".join(out) + "\n").encode()


MC_TASK = """task: {name}
dataset_path: {path}
{kwargs}output_type: multiple_choice
test_split: test
doc_to_text: "The capital of {{{{country}}}} is"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def mc_task(folder: Path, name: str, path: str, **dataset_kwargs) -> None:
    kwargs = yaml.safe_dump({"dataset_kwargs": dataset_kwargs}) if dataset_kwargs else ""
    (folder / f"{name}.yaml").write_text(MC_TASK.format(name=name, path=path, kwargs=kwargs))


def online_env(workdir: Path, hub: HubStub) -> dict:
    """The environment of a run on a machine with the internet: the stand-in Hub, nothing offline."""
    env = base_env(workdir)
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(k, None)
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(workdir / "hf-home"), HF_HUB_DISABLE_XET="1")
    return env


# ---------------------------------------------------------------- which tasks need data (plan)


def test_only_tasks_reading_from_the_hub_get_a_receipt(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    mc_task(tasks, "hub_a", "org/a")
    (tasks / "local.jsonl").write_text('{"country": "x", "choices": ["a"], "label": 0}\n')
    mc_task(tasks, "local_json", "json", data_files={"test": str(tasks / "local.jsonl")})
    (tasks / "grp.yaml").write_text("group: grp_hub\ntask: [local_json, hub_a]\n")
    (tasks / "grp2.yaml").write_text("group: grp_local\ntask: [local_json, mergelab_categories]\n")
    dirs = [WORKFLOW_TASKS, tasks]
    names = ["mergelab_demo", "mergelab_categories", "local_json", "hub_a", "grp_hub", "grp_local", "mmlu"]
    assert hub_tasks(names, dirs) == ["hub_a", "grp_hub", "mmlu"]


def _cfg(tmp_path, tasks, **harness):
    from conftest import fake_model_dir

    model = fake_model_dir(tmp_path / "m")
    return {"models": {"base": {"path": str(model)}}, "merges": [], "harness": {"tasks": tasks, **harness}}


def test_the_default_tasks_need_no_data_so_finished_campaigns_get_no_new_input(tmp_path):
    default = yaml.safe_load((REPO / "config" / "experiment.yaml").read_text())
    exp = load_experiment(_cfg(tmp_path, default["harness"]["tasks"]), "cfg", workdir=tmp_path)
    assert exp.harness.data_tasks == [] and exp.harness.data_receipts(exp.harness.tasks) == []


def test_a_model_named_data_is_refused_in_one_line(tmp_path):
    cfg = _cfg(tmp_path, ["mergelab_categories"])
    cfg["models"] = {"data": cfg["models"]["base"]}
    with pytest.raises(ConfigError, match=r"models\.data: .*results/harness/data/"):
        load_experiment(cfg, "cfg", workdir=tmp_path)


def test_harness_data_jobs_get_their_cache_dir_relative_to_the_workdir(tmp_path):
    exp = load_experiment(
        _cfg(tmp_path, ["mmlu"], data={"cache_dir": "hf-data"}), "cfg", workdir=tmp_path, lm_eval_tasks=lambda: None
    )
    assert exp.job_params("harness_data", task="mmlu")["cache_dir"] == "{workdir}/hf-data"
    assert exp.harness.data_receipts(["mmlu"]) == ["results/harness/data/mmlu.json"]


# ---------------------------------------------------------------- partial results (unit)


def test_a_partial_result_is_named_in_one_line():
    from mergelab.evaluate.completeness import partial_result

    def res(effective, original, limit):
        return {
            "n-samples": {"t": {"effective": effective, "original": original}},
            "mergelab": {"settings": {"limit": limit}},
        }

    assert partial_result(res(40, 40, None)) is None
    assert partial_result(res(10, 40, 10)) is None and partial_result(res(40, 40, 100)) is None
    assert partial_result(res(10, 40, 0.25)) is None and partial_result(res(11, 41, 0.25)) is None
    line = partial_result(res(37, 40, None))
    assert "task t evaluated 37 of the 40 documents" in line and "\n" not in line
    assert partial_result(res(5, 40, 10))


def test_a_job_with_a_partial_result_fails_in_one_line_before_writing(monkeypatch):
    from mergelab.evaluate import harness
    from mergelab.evaluate.harness_model import load_key
    from mergelab.runtime.jobs import JobError

    class Partial:
        key = None

        def __init__(self, *args):
            self.key = load_key(args[1])

        def run(self, tasks, s, tm):
            return {
                "results": {"t": {"acc,none": 1.0}},
                "n-samples": {"t": {"original": 40, "effective": 37}},
                "mergelab": {"settings": s.record()},
            }

    monkeypatch.setattr(harness, "Model", Partial)
    monkeypatch.setattr(harness, "task_manager", lambda *a: object())
    with pytest.raises(JobError, match=r"^t: partial result: task t evaluated 37 of the 40 documents .*not written"):
        harness.evaluate_model(
            "m", [["t"]], {"t": harness_settings()}, include_paths=[], include_defaults=False, device="cpu", gpus=0
        )


def test_organize_never_tabulates_a_partial_result(tmp_path):
    from mergelab.analysis.organize import harness_table

    src = REPO / "tests" / "data" / "harness_results" / "base" / "test_mc.json"
    res = json.loads(src.read_text())
    task, n = next(iter(res["n-samples"].items()))
    res["n-samples"][task] = {"original": n["original"] + 5, "effective": n["effective"]}
    (tmp_path / "partial.json").write_text(json.dumps(res))
    table = harness_table({"base": {"test_mc": str(tmp_path / "partial.json")}}, catalogue_of({"models": {}}))
    assert list(table["status"]) == ["partial"] and table["value"].isna().all()
    full = harness_table({"base": {"test_mc": str(src)}}, catalogue_of({"models": {}}))
    assert (full["status"] == "ok").all()


def test_offline_dataset_errors_become_one_line():
    from mergelab.evaluate.harness_env import offline_failure

    try:
        try:
            raise RuntimeError("OfflineModeIsEnabled")
        except RuntimeError as e:
            raise ConnectionError("Couldn't reach 'org/tiny' on the Hub (OfflineModeIsEnabled)") from e
    except ConnectionError as e:
        line = offline_failure(RuntimeError("wrapped"), ["t"]) or offline_failure(e, ["t"])
    assert "task 't': dataset org/tiny" in line and "harness_data" in line and "\n" not in line
    assert offline_failure(ValueError("bad data"), ["t"]) is None


PREPARE = """
import json, logging, os, sys, types
from mergelab.evaluate import harness_env as harness
from mergelab.evaluate.evaluation_job import prepare_harness_job
smk = types.SimpleNamespace(config=json.loads(sys.argv[1]), input={"data": []})
prepare_harness_job(smk, types.SimpleNamespace(model="base"), logging.getLogger())
print(json.dumps([os.environ.get("HF_HUB_OFFLINE"), os.environ.get("HF_DATASETS_CACHE"), harness.REQUEST_CACHE]))
"""


@pytest.mark.parametrize(
    "harness,offline,cache",
    [
        ({}, "1", {"root": "results/harness/.cache", "model": "base", "keep": False}),
        ({"data": {"offline": False, "cache_dir": "d"}, "cache": {"activate": False}}, None, {}),
        ({"cache": {"dir": "c", "keep": True}}, "1", {"root": "c", "model": "base", "keep": True}),
    ],
)
def test_harness_jobs_read_data_and_cache_settings_from_the_config(tmp_path, harness, offline, cache):
    env = {k: v for k, v in base_env(tmp_path).items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_CACHE")}
    proc = subprocess.run(
        [sys.executable, "-c", PREPARE, json.dumps({"harness": harness})],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got_offline, got_cache_dir, got_cache = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got_offline == offline
    assert got_cache_dir == (str(tmp_path / "d") if harness.get("data", {}).get("cache_dir") else None)
    if cache:
        cache = {**cache, "root": str(tmp_path / cache["root"])}
    assert got_cache == cache


def test_request_cache_folders_follow_settings_and_model_and_go_on_success(tmp_path):
    from conftest import fake_model_dir
    from mergelab.evaluate import harness_env as harness

    model = fake_model_dir(tmp_path / "m")
    root = str(tmp_path / "cache")
    a = harness.cache_folder(root, "base", ["t"], {"limit": None}, str(model))
    assert a == harness.cache_folder(root, "base", ["t"], {"limit": None}, str(model))
    assert a != harness.cache_folder(root, "base", ["t"], {"limit": 5}, str(model))
    assert a != harness.cache_folder(root, "alpha", ["t"], {"limit": None}, str(model))
    (model / "config.json").write_text('{"changed": 1}')  # the model made again: another cache
    b = harness.cache_folder(root, "base", ["t"], {"limit": None}, str(model))
    assert b != a and b.parent == a.parent

    for keep in (True, False):
        harness.REQUEST_CACHE.clear()
        harness.REQUEST_CACHE.update(root=root, model="base", keep=keep, model_path=str(model))
        used = Path(harness.request_cache(["t"], {"limit": None})).parent
        stale, other = used.parent / f"t-{'0' * 16}", used.parent / f"t_other-{'0' * 16}"
        stale.mkdir(exist_ok=True)
        other.mkdir(exist_ok=True)
        harness.finish_request_cache()
        assert used.is_dir() == keep and stale.is_dir() == keep and other.is_dir()
    harness.REQUEST_CACHE.clear()


# ---------------------------------------------------------------- harness_data through the stand-in Hub


@pytest.fixture(scope="module")
def hub():
    stub = HubStub().start()
    yield stub
    try:
        stub.stop()
    except Exception:  # noqa: BLE001 - a test stopped it already
        pass


@pytest.mark.workflow
def test_data_fetched_once_then_evaluated_offline(tmp_path, tiny_models, hub):
    """harness_data fetches a group's two datasets (one pinned to an older commit) through the
    stand-in Hub; with the Hub gone, the harness job gives what an online evaluation gives, and a
    second campaign in the same folder reuses the receipt without asking the Hub anything."""
    pinned = hub.add_dataset("mergelab-test/capitals", {"data/test.jsonl": capitals_rows(12)})
    hub.add_dataset_commit("mergelab-test/capitals", {"data/test.jsonl": capitals_rows(20, shift=3)})
    hub.add_dataset("mergelab-test/more-capitals", {"test.jsonl": capitals_rows(8, shift=1)})
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    mc_task(tasks, "hub_capitals", "mergelab-test/capitals", revision=pinned)
    mc_task(tasks, "hub_more", "mergelab-test/more-capitals")
    (tasks / "group.yaml").write_text(
        "group: hub_group\ntask: [hub_capitals, hub_more]\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\nmetadata:\n  version: 1.0\n"
    )
    cfg = {
        "models": {"base": {"path": str(tiny_models["base"])}},
        "merges": [],
        "harness": {
            "tasks": ["hub_group"],
            "include_path": ["tasks"],
            "settings": {"batch_size": 8},
            "data": {"cache_dir": "hf-data"},
        },
    }
    path = write_config(tmp_path, cfg)
    env = online_env(tmp_path, hub)
    plan = planned_jobs(snakemake(tmp_path, path, "-n", env=env, check=True).stdout)
    assert plan["harness_data"] == ["task=hub_group"] and len(plan["harness_eval"]) == 1

    before = len(hub.requests)
    snakemake(tmp_path, path, "results/harness/data/hub_group.json", env=env, check=True)
    assert len(hub.requests) > before
    receipt = json.loads((tmp_path / "results/harness/data/hub_group.json").read_text())
    by_id = {d["dataset"]: d for d in receipt["datasets"]}
    assert set(by_id) == {"mergelab-test/capitals", "mergelab-test/more-capitals"}
    assert by_id["mergelab-test/capitals"]["commit"] == pinned and by_id["mergelab-test/capitals"]["revision"] == pinned
    assert by_id["mergelab-test/capitals"]["splits"] == {"test": 12}  # the pinned commit, not the head's 20
    assert by_id["mergelab-test/more-capitals"]["commit"] == hub.dataset_repos["mergelab-test/more-capitals"].head
    assert receipt["cache_dir"] == str(tmp_path / "hf-data")  # harness.data.cache_dir
    for d in by_id.values():
        assert d["files"] and d["bytes"] == sum(os.path.getsize(f) for f in d["files"]) > 0
        assert all(f.startswith(str(tmp_path / "hf-data") + "/") for f in d["files"])
    assert not (tmp_path / "hf-home" / "datasets").exists()
    assert by_id["mergelab-test/capitals"]["tasks"] == ["hub_capitals"]

    # the reference: the same evaluation with the data online (a fresh cache, through the Hub)
    ref_env = dict(env, HF_HOME=str(tmp_path / "ref-home"))
    code = (
        "import json, sys\n"
        "from mergelab.evaluate.harness import evaluate\n"
        "from mergelab.plan.jobs import HarnessSettings\n"
        "s = HarnessSettings.from_record(json.loads(sys.argv[1]))\n"
        "r = evaluate(sys.argv[2], 'hub_group', s, include_paths=[sys.argv[3]], include_defaults=False,"
        " device='cpu', gpus=0)\n"
        "print(json.dumps(r['results'], default=str))\n"
    )
    exp = load_experiment(cfg, "cfg", workdir=tmp_path)
    settings = exp.job("harness_eval", model="base", task="hub_group").settings
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(settings.record()), str(tiny_models["base"]), str(tasks)],
        env=ref_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    online = json.loads(proc.stdout.strip().splitlines()[-1])

    hub.stop()  # from here on, any request to the Hub fails
    snakemake(tmp_path, path, env=env, check=True)
    res = json.loads((tmp_path / "results/harness/base/hub_group.json").read_text())
    assert {t: r["acc,none"] for t, r in res["results"].items()} == {t: r["acc,none"] for t, r in online.items()}
    assert res["n-samples"]["hub_capitals"]["effective"] == 12
    log = (tmp_path / "logs/harness_eval/base/hub_group.log").read_text()
    assert "offline mode is enabled" in log  # datasets took the prepared copy

    cfg["models"]["alpha"] = {"path": str(tiny_models["alpha"])}  # a second campaign, same folder
    path = write_config(tmp_path, cfg, "second.yaml")
    plan = planned_jobs(snakemake(tmp_path, path, "-n", env=env, check=True).stdout)
    assert "harness_data" not in plan and plan["harness_eval"] == ["model=alpha, task=hub_group"]
    snakemake(tmp_path, path, env=env, check=True)
    assert (tmp_path / "results/harness/alpha/hub_group.json").is_file()

    # offline without the data: one line naming the task, the dataset and what to run where
    import shutil

    shutil.rmtree(tmp_path / "hf-data")
    proc = snakemake(tmp_path, path, "--forcerun", "harness_eval", env=env)
    assert proc.returncode != 0
    line = next(x for x in proc.stderr.splitlines() if x.startswith("mergelab: task"))
    assert "'hub_group'" in line and "mergelab-test/" in line and "harness_data" in line and "login node" in line


@pytest.mark.workflow
def test_a_per_model_job_waits_for_the_receipts_of_its_tasks(tmp_path, tiny_models):
    (tmp_path / "tasks").mkdir()
    mc_task(tmp_path / "tasks", "hub_capitals", "mergelab-test/capitals")
    cfg = {
        "models": {"base": {"path": str(tiny_models["base"])}},
        "merges": [],
        "harness": {"jobs": "per_model", "tasks": ["hub_capitals", "mergelab_categories"], "include_path": ["tasks"]},
    }
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "-n", "--forceall", check=True)
    plan = planned_jobs(proc.stdout)
    assert plan["harness_data"] == ["task=hub_capitals"] and plan["harness_eval_model"] == ["model=base"]
    block = proc.stdout[proc.stdout.index("rule harness_eval_model:") :]
    assert "results/harness/data/hub_capitals.json" in block.split("output:")[0]
    assert "results/harness/data/mergelab_categories.json" not in proc.stdout


# ---------------------------------------------------------------- resuming a killed evaluation

RESUME_TASK = "big_capitals"


def big_task(folder: Path, n: int = 400) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "big.jsonl").write_bytes(capitals_rows(n))
    mc_task(folder, RESUME_TASK, "json", data_files={"test": str(folder / "big.jsonl")})


def resume_cfg(tiny_models, tasks: Path) -> dict:
    return {
        "models": {"base": {"path": str(tiny_models["base"])}},
        "merges": [],
        "harness": {"tasks": [RESUME_TASK], "include_path": [str(tasks)], "settings": {"batch_size": 1}},
    }


def cached_rows(workdir: Path) -> int:
    """Responses in the request caches under workdir (0 while none is readable)."""
    total = 0
    for db in (workdir / "results" / "harness" / ".cache").rglob("lm_eval_rank*.db"):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
                total += con.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0]
        except sqlite3.Error:
            pass
    return total


def cache_counts(log: str) -> list:
    """lm-eval's (cached, computed) request counts per request type, in the order logged."""
    import re

    return [(int(a), int(b)) for a, b in re.findall(r"Cached requests: (\d+), Requests remaining: (\d+)", log)]


def uninterrupted_run(wd: Path, tiny_models) -> tuple:
    """The resume task's result and model calls in one run that nothing cuts off."""
    big_task(wd / "tasks")
    snakemake(wd, write_config(wd, resume_cfg(tiny_models, wd / "tasks")), check=True)
    res = json.loads((wd / f"results/harness/base/{RESUME_TASK}.json").read_text())
    calls = sum(b for _, b in cache_counts((wd / f"logs/harness_eval/base/{RESUME_TASK}.log").read_text()))
    return res, calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_models):
    return uninterrupted_run(tmp_path_factory.mktemp("uninterrupted"), tiny_models)


@pytest.mark.workflow
def test_a_killed_evaluation_resumes_from_its_cache(tmp_path, tiny_models, uninterrupted):
    """kill -9 of the job mid-way, the same command again: fewer model calls, the same result,
    and the cache is gone after the success."""
    import psutil

    full, full_calls = uninterrupted
    assert full_calls == 1600  # 400 documents, four choices each
    big_task(tmp_path / "tasks")
    path = write_config(tmp_path, resume_cfg(tiny_models, tmp_path / "tasks"))
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2"]
    proc = subprocess.Popen(
        cmd + ["--configfile", str(path)],
        cwd=tmp_path,
        env=base_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and cached_rows(tmp_path) < 300:
            time.sleep(0.1)
        assert proc.poll() is None, "the evaluation ended before it could be killed"
        killed = cached_rows(tmp_path)
        for child in psutil.Process(proc.pid).children(recursive=True):  # the job, not Snakemake
            child.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and 300 <= killed < full_calls
    assert not (tmp_path / f"results/harness/base/{RESUME_TASK}.json").exists()

    snakemake(tmp_path, path, check=True)  # the same command again
    res = json.loads((tmp_path / f"results/harness/base/{RESUME_TASK}.json").read_text())
    counts = cache_counts((tmp_path / f"logs/harness_eval/base/{RESUME_TASK}.log").read_text())
    cached, computed = counts[-1]
    assert cached >= killed and cached + computed == full_calls and computed < full_calls
    assert res["results"] == full["results"] and res["n-samples"] == full["n-samples"]
    assert res["mergelab"]["resumed_from_cache"] and not full["mergelab"]["resumed_from_cache"]
    assert res["config"]["use_cache"] is None  # no path to a cache that is gone
    assert not list((tmp_path / "results" / "harness" / ".cache").rglob("*.db"))  # removed on success
