"""The Hub stage against a local stand-in of the Hub's HTTP API (tests/hubstub.py, 127.0.0.1 only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import load_state, snakemake, write_config
from hubstub import HubStub

TOKEN = "hf_mergelabSECRETtoken4242"


def hub_env(tmp: Path, stub: HubStub, token: str | None = TOKEN) -> dict:
    from conftest import base_env

    env = base_env(tmp)
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    env.update(
        HF_ENDPOINT=stub.url,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(tmp / "hf-home"),
        HF_HUB_CACHE=str(tmp / "hf-cache"),
        NO_PROXY="127.0.0.1",
    )
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def upload(stub: HubStub, repo_id: str, folder: Path) -> str:
    """Put a model on the stand-in with the real client, as a user would; return the commit."""
    code = (
        "import sys; from huggingface_hub import HfApi; api = HfApi()\n"
        f"api.create_repo({repo_id!r}, private=False, exist_ok=True)\n"
        f"print(api.upload_folder(repo_id={repo_id!r}, folder_path={str(folder)!r}).oid)\n"
    )
    env = hub_env(folder.parent, stub)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def with_license(src: Path, dest: Path, license_id: str) -> Path:
    shutil.copytree(src, dest)
    (dest / "README.md").write_text(f"---\nlicense: {license_id}\n---\n# {dest.name}\n")
    return dest


@pytest.fixture()
def stub():
    server = HubStub(token=TOKEN).start()
    yield server
    server.stop()


# ---------------------------------------------------------------- fetch


@pytest.mark.workflow
def test_fetch_pinned_revision_then_merge_uses_it_and_offline_cache(tmp_path, stub, tiny_models):
    base = with_license(tiny_models["base"], tmp_path / "up" / "base", "apache-2.0")
    alpha = with_license(tiny_models["alpha"], tmp_path / "up" / "alpha", "apache-2.0")
    upload(stub, "org/base", base)
    pinned = upload(stub, "org/alpha", alpha)
    # a later commit on main changes the weights: the pin must keep the first ones
    shutil.copy(tiny_models["beta"] / "model.safetensors", alpha / "model.safetensors")
    newer = upload(stub, "org/alpha", alpha)
    assert newer != pinned
    cfg = {
        "models": {"base": {"hub": "org/base"}, "alpha": {"hub": "org/alpha", "revision": pinned}},
        "merges": [
            {
                "name": "h",
                "models": ["alpha"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "parameters": {"weight": 0.5},
                "dtype": "float32",
            }
        ],
    }
    wd = tmp_path / "wd"
    env = hub_env(tmp_path, stub)
    path = write_config(wd, cfg)
    snakemake(wd, path, "merges", env=env, check=True)

    receipt = json.loads((wd / "results/hub/parents/alpha.json").read_text())
    assert receipt["commit"] == pinned and receipt["revision"] == pinned and receipt["license"] == "apache-2.0"
    assert Path(receipt["path"]).is_relative_to(tmp_path / "hf-cache")
    assert "model.safetensors" in receipt["files"] and "README.md" in receipt["files"]
    out = load_state(wd / "results/models/h_task_arithmetic_w0.5")
    b, a = load_state(tiny_models["base"]), load_state(tiny_models["alpha"])
    for k in b:
        torch.testing.assert_close(out[k], b[k] + 0.5 * (a[k] - b[k]), rtol=1e-5, atol=1e-6)
    card = (wd / "results/models/h_task_arithmetic_w0.5/README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == ["org/base", "org/alpha"] and meta["license"] == "apache-2.0"
    assert {"merge", "mergekit", "mergelab"} <= set(meta["tags"])

    # offline with a warm cache: fetch again without a single request
    seen = len(stub.requests)
    (wd / "results/hub/parents/alpha.json").unlink()
    offline = dict(env, HF_HUB_OFFLINE="1")
    snakemake(wd, path, "results/hub/parents/alpha.json", env=offline, check=True)
    assert json.loads((wd / "results/hub/parents/alpha.json").read_text())["commit"] == pinned
    assert len(stub.requests) == seen

    # offline with a cold cache: one clear line, no receipt
    cold = dict(cfg, hub={"fetch": {"cache_dir": "empty-cache"}})
    path = write_config(wd, cold, "cold.yaml")
    (wd / "results/hub/parents/alpha.json").unlink()
    proc = snakemake(wd, path, "results/hub/parents/alpha.json", env=offline)
    assert proc.returncode != 0
    assert f"mergelab: offline (HF_HUB_OFFLINE=1) and org/alpha@{pinned} is not in" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (wd / "results/hub/parents/alpha.json").exists()


# ---------------------------------------------------------------- push


def push_cfg(tiny_models, **hub):
    return {
        "models": {n: {"path": str(p)} for n, p in tiny_models.items()},
        "merges": [
            {
                "name": "ab",
                "models": ["alpha", "beta"],
                "base": "base",
                "methods": ["task_arithmetic"],
                "dtype": "float32",
            }
        ],
        "harness": {"tasks": ["mergelab_categories"], "settings": {"batch_size": 8, "bootstrap_iters": 100}},
        "hub": {"push": {"activate": True, "namespace": "me", **hub}, "retries": 2, "retry_wait": 0.05},
    }


@pytest.mark.workflow
def test_push_card_results_rerun_and_no_token_leak(tmp_path, stub, tiny_models):
    from huggingface_hub import ModelCard

    wd = tmp_path / "wd"
    env = hub_env(tmp_path, stub)
    path = write_config(wd, push_cfg(tiny_models))
    snakemake(wd, path, env=env, check=True)

    mid = "ab_task_arithmetic_w0.5"
    receipt = json.loads((wd / f"results/hub/{mid}.json").read_text())
    repo = f"me/{mid}"
    assert receipt["repo_id"] == repo and receipt["private"] is True
    assert receipt["url"] == f"{stub.url}/{repo}"
    local = wd / "results/models" / mid
    assert receipt["size"] == sum(p.stat().st_size for p in local.iterdir())
    assert stub.repos[repo].private
    first_push = receipt["commit_id"]
    assert first_push in stub.commits(repo)
    for f in local.iterdir():  # byte for byte, as pushed
        assert stub.file(repo, f.name, first_push) == f.read_bytes(), f.name

    # after organize, the card carries a model-index the Hub client parses back
    results = json.loads((wd / f"results/hub/results/{mid}.json").read_text())
    assert stub.repos[repo].head == results["commit_id"] and results["results"] == 1
    card_text = stub.file(repo, "README.md").decode()
    card = ModelCard(card_text)
    meta = yaml.safe_load(card_text.split("---")[1])
    assert {"merge", "mergekit", "mergelab"} <= set(meta["tags"]) and meta["library_name"] == "transformers"
    assert meta["model-index"][0]["name"] == mid
    (ev,) = card.data.eval_results
    harness = pd.read_csv(wd / "results/tables/harness.csv")
    primary = harness[(harness["model"] == mid) & harness["primary"] & (harness["task"] == "mergelab_categories")]
    assert ev.dataset_type == "mergelab_categories" and ev.metric_type == primary["metric"].iloc[0]
    assert ev.metric_value == pytest.approx(primary["value"].iloc[0], abs=1e-6)
    assert "## Evaluation (mergelab)" in card_text and "mergelab_categories" in card_text.split("## Evaluation")[1]
    # each result with its interval, and the paired comparisons with the parents (issue 19)
    assert f"[{primary['ci_low'].iloc[0]:.4f}, {primary['ci_high'].iloc[0]:.4f}]" in card_text
    pairs = pd.read_csv(wd / "results/tables/merge_comparisons.csv")
    pairs = pairs[pairs["model"] == mid]
    assert len(pairs) > 0 and "Against its parents, paired on the same items" in card_text
    for r in pairs.itertuples():
        assert f"| {r.task} | {r.parent} ({r.relation}) | {r.n} |" in card_text

    # nothing changed: nothing to do; forcing the card update makes no new commit
    proc = snakemake(wd, path, "-n", env=env, check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    commits = len(stub.commits(repo))
    snakemake(wd, path, f"results/hub/results/{mid}.json", "--forcerun", "push_results", env=env, check=True)
    assert len(stub.commits(repo)) == commits

    # the token is nowhere: logs, receipts, results, Snakemake's metadata
    proc = subprocess.run(
        ["grep", "-rl", TOKEN, "logs", "results", ".snakemake", "benchmarks"], cwd=wd, capture_output=True, text=True
    )
    assert proc.stdout == "" and proc.returncode == 1
    sent = [{k.lower(): v for k, v in r["headers"].items()}.get("authorization") for r in stub.requests]
    assert f"Bearer {TOKEN}" in sent  # ...yet it did authenticate the pushes


@pytest.mark.workflow
def test_transient_errors_are_retried(tmp_path, stub, tiny_models):
    stub.fail("/api/repos/create", status=503, times=2)
    wd = tmp_path / "wd"
    cfg = push_cfg(tiny_models)
    cfg["harness"] = {}
    path = write_config(wd, cfg)
    snakemake(wd, path, "pushes", env=hub_env(tmp_path, stub), check=True)
    assert (wd / "results/hub/ab_task_arithmetic_w0.5.json").is_file()
    creates = [r for r in stub.requests if r["path"] == "/api/repos/create"]
    assert len(creates) == 3
    log = (wd / "logs/push/ab_task_arithmetic_w0.5.log").read_text()
    assert log.count("HTTP 503") == 2 and "retrying" in log
    # pushing again what is already there makes no new commit
    commits = stub.commits("me/ab_task_arithmetic_w0.5")
    snakemake(wd, path, "pushes", "--forcerun", "push", env=hub_env(tmp_path, stub), check=True)
    assert stub.commits("me/ab_task_arithmetic_w0.5") == commits


@pytest.mark.workflow
def test_a_hub_that_keeps_failing_leaves_no_receipt(tmp_path, stub, tiny_models):
    stub.fail("/commit/", status=503, times=-1)
    wd = tmp_path / "wd"
    cfg = push_cfg(tiny_models)
    cfg["harness"] = {}
    path = write_config(wd, cfg)
    proc = snakemake(wd, path, "pushes", env=hub_env(tmp_path, stub))
    assert proc.returncode != 0
    assert (
        "mergelab: uploading results/models/ab_task_arithmetic_w0.5 to me/ab_task_arithmetic_w0.5 failed "
        "after 3 attempts: HTTP 503" in proc.stderr
    )
    assert not (wd / "results/hub/ab_task_arithmetic_w0.5.json").exists()
    assert len([r for r in stub.requests if "/commit/" in r["path"]]) == 3


@pytest.mark.workflow
def test_push_without_a_token_stops_before_any_job(tmp_path, stub, tiny_models):
    wd = tmp_path / "wd"
    path = write_config(wd, push_cfg(tiny_models))
    proc = snakemake(wd, path, env=hub_env(tmp_path, stub, token=None))
    assert proc.returncode != 0
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "mergelab: " + str(path.relative_to(wd)) + ": hub.push.activate: pushing needs a Hugging Face token"
        )
    )
    assert not (wd / "results").exists() and stub.requests == []


# ---------------------------------------------------------------- pieces


def test_results_card_is_parseable_and_idempotent():
    from huggingface_hub import ModelCard

    from mergelab.hub import results_card

    base = "---\nlibrary_name: transformers\ntags:\n- merge\n---\n# m\n\nA merge.\n"
    rows = [
        {"task": "gsm8k", "metric": "exact_match", "filter": "strict-match", "value": 0.5, "stderr": 0.01, "n_shot": 5},
        {"task": "mmlu", "metric": "acc", "filter": "none", "value": 0.6, "stderr": float("nan"), "n_shot": 0},
    ]
    comp = [{"competence": "syntax", "mean_f1": 0.7, "mean_pearson": float("nan"), "winning_rate": 50.0}]
    once = results_card(base, "m", rows, comp)
    twice = results_card(once, "m", rows, comp)
    assert once == twice
    evs = ModelCard(once).data.eval_results
    assert [(e.dataset_type, e.metric_type, e.metric_value) for e in evs] == [
        ("gsm8k", "exact_match", 0.5),
        ("mmlu", "acc", 0.6),
    ]
    assert evs[0].metric_name == "exact_match (strict-match), 5-shot"
    assert "| syntax | 0.7000 |  | 50.0 |" in once and "A merge." in once
    # the interval of each result and the paired comparisons with the parents (issue 19)
    rows[0].update(ci_low=0.45, ci_high=0.55)
    pairs = [
        {"task": "gsm8k", "parent": "a", "relation": "parent", "n": 1319, "diff": 0.04, "ci_low": 0.02}
        | {"ci_high": 0.06, "p_adjusted": 0.001, "verdict": "better", "test": "exact McNemar", "alpha": 0.05}
        | {"correction": "holm"}
    ]
    card = results_card(base, "m", rows, comp, comparison_rows=pairs)
    assert "| gsm8k | exact_match | 0.5000 | [0.4500, 0.5500] | 0.0100 |" in card
    assert "| mmlu | acc | 0.6000 |  |  |" in card
    assert "| gsm8k | a (parent) | 1319 | 0.0400 | [0.0200, 0.0600] | 0.0010 | better | exact McNemar |" in card
    assert "95% bootstrap interval" in card and "(holm)" in card
    assert results_card(card, "m", rows, comp, comparison_rows=pairs) == card


def test_license_only_when_the_parents_agree(tmp_path):
    from mergelab.hub import agreed_license

    dirs = []
    for name, lic in (("a", "mit"), ("b", "mit"), ("c", "apache-2.0"), ("d", None)):
        d = tmp_path / name
        d.mkdir()
        if lic:
            (d / "README.md").write_text(f"---\nlicense: {lic}\n---\n")
        dirs.append(str(d))
    assert agreed_license(dirs[:2]) == "mit"
    assert agreed_license(dirs[:3]) is None
    assert agreed_license([dirs[0], dirs[3]]) is None


def test_which_errors_are_transient():
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from mergelab.hub import transient

    def http_error(status):
        request = httpx2.Request("POST", "http://127.0.0.1/api/repos/create")
        return HfHubHTTPError("x", response=httpx2.Response(status, request=request))

    assert transient(http_error(503)) and transient(http_error(429)) and transient(http_error(504))
    assert not transient(http_error(404)) and not transient(http_error(401))
    assert transient(httpx2.ConnectError("refused")) and transient(httpx2.ReadTimeout("slow"))
    assert not transient(OfflineModeIsEnabled("offline")) and not transient(ValueError("bad"))
