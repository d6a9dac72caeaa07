"""The Hugging Face Hub: fetch parents once, push merges, publish their results in the card.

Everything goes through huggingface_hub's own client. The token comes from
HF_TOKEN or the user's saved login (huggingface_hub.get_token) and is never
written anywhere by mergelab: not in params, logs, receipts or cards.
Transient Hub errors (5xx, 408, 429, timeouts, dropped connections) are retried
with exponential backoff; a push that fails leaves no receipt, so a rerun
resumes it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from mergelab.runtime.jobs import JobError

log = logging.getLogger("mergelab.hub")

WEIGHT_AND_TOKENIZER_FILES = [
    "*.json",
    "*.safetensors",
    "tokenizer*",
    "*.model",
    "*.tiktoken",
    "*.txt",
    "*.jinja",
    "README.md",
    "LICENSE*",
]
PICKLE_FILES = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt"]
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def allow_patterns(patterns: Optional[List[str]], pickles: bool) -> List[str]:
    return list(patterns or WEIGHT_AND_TOKENIZER_FILES) + (PICKLE_FILES if pickles else [])


def transient(exc: BaseException) -> bool:
    """A Hub error worth retrying: 5xx/408/429, a timeout, a dropped connection (not offline mode)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        return getattr(response, "status_code", None) in TRANSIENT_STATUS
    import httpx2  # huggingface_hub's HTTP client

    return isinstance(
        exc, (TimeoutError, ConnectionError, httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
    )


def with_retries(call: Callable[[], Any], what: str, retries: int, wait: float) -> Any:
    """call(), retried up to `retries` times on transient errors, waiting wait, 2*wait, 4*wait, ..."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not transient(exc) or attempt == retries:
                if transient(exc):
                    raise JobError(f"{what} failed after {retries + 1} attempts: {_describe(exc)}") from exc
                raise
            pause = wait * 2**attempt
            log.warning("%s: %s; retrying in %.1f s (%d/%d)", what, _describe(exc), pause, attempt + 1, retries)
            time.sleep(pause)


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}"


def token() -> Optional[str]:
    from huggingface_hub import get_token

    return get_token()


# --------------------------------------------------------------------------- cards


def card_metadata(path: Path) -> Dict[str, Any]:
    """The YAML front matter of a model card (README.md), {} if none."""
    readme = Path(path) / "README.md"
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    try:
        return yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}


def agreed_license(parent_dirs: List[str]) -> Optional[str]:
    """The parents' license when they all declare the same one."""
    licenses = {card_metadata(Path(d)).get("license") for d in parent_dirs}
    return licenses.pop() if len(licenses) == 1 and None not in licenses else None


# --------------------------------------------------------------------------- fetch


def fetch(
    repo_id: str,
    revision: Optional[str],
    patterns: List[str],
    cache_dir: Optional[str],
    *,
    retries: int = 4,
    wait: float = 2.0,
) -> Dict[str, Any]:
    """snapshot_download of repo_id at revision (honouring HF_HUB_OFFLINE); a receipt of what arrived."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    where = cache_dir or os.environ.get("HF_HUB_CACHE") or "the Hugging Face cache"
    ref = f"{repo_id}@{revision or 'main'}"
    try:
        path = with_retries(
            lambda: snapshot_download(repo_id, revision=revision, allow_patterns=patterns, cache_dir=cache_dir),
            f"downloading {ref}",
            retries,
            wait,
        )
    except LocalEntryNotFoundError:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise JobError(
                f"offline (HF_HUB_OFFLINE=1) and {ref} is not in {where}: fetch it once with network "
                "access (snakemake fetch), or point hub.fetch.cache_dir at a cache that has it"
            ) from None
        raise JobError(f"could not download {ref} into {where}") from None
    except RepositoryNotFoundError:
        raise JobError(f"{repo_id} does not exist on the Hub, or your token cannot see it") from None
    except RevisionNotFoundError:
        raise JobError(f"{repo_id} has no revision {revision!r}") from None
    snapshot = Path(path)
    files = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())
    if not any(f.endswith(".safetensors") or f.endswith(".bin") for f in files):
        raise JobError(
            f"{ref}: no weights among the files allowed ({', '.join(patterns)}); "
            "set hub.fetch.allow_pickles for *.bin checkpoints"
        )
    return {
        "repo_id": repo_id,
        "revision": revision,
        "commit": snapshot.name,
        "path": str(snapshot),
        "files": files,
        "license": card_metadata(snapshot).get("license"),
    }


def snapshot_path(receipt_path: str) -> str:
    """The local directory a fetch receipt (written by the fetch rule) points to."""
    with open(receipt_path, encoding="utf-8") as fh:
        return json.load(fh)["path"]


# --------------------------------------------------------------------------- push


def push(
    model_dir: str, repo_id: str, *, private: bool, message: str, retries: int = 4, wait: float = 2.0
) -> Dict[str, Any]:
    """create_repo + upload_folder; unchanged files are not re-uploaded, nothing new makes no commit."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_url = with_retries(
        lambda: api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model"),
        f"creating {repo_id}",
        retries,
        wait,
    )
    info = with_retries(
        lambda: api.upload_folder(repo_id=repo_id, folder_path=model_dir, commit_message=message),
        f"uploading {model_dir} to {repo_id}",
        retries,
        wait,
    )
    files = sorted(p for p in Path(model_dir).rglob("*") if p.is_file())
    return {
        "repo_id": repo_id,
        "url": str(repo_url),
        "commit_id": info.oid,
        "commit_url": info.commit_url,
        "private": private,
        "files": [{"path": str(p.relative_to(model_dir)), "size": p.stat().st_size} for p in files],
        "size": sum(p.stat().st_size for p in files),
    }


def results_card(
    card_text: str,
    repo_name: str,
    harness_rows: List[Dict[str, Any]],
    competence_rows: List[Dict[str, Any]],
    source: str = "mergelab",
    comparison_rows: List[Dict[str, Any]] = (),
) -> str:
    """The card with a model-index of the harness results and a section with each result's
    bootstrap interval (harness rows' ci_low, ci_high), the paired comparisons with the merge's
    parents (rows of results/tables/merge_comparisons.csv) and a Holmes summary."""
    from huggingface_hub import EvalResult, ModelCard

    card = ModelCard(card_text)
    results = []
    for r in harness_rows:
        shots = r.get("n_shot")
        name = r["metric"] + (f" ({r['filter']})" if r.get("filter") not in (None, "", "none") else "")
        if shots not in (None, ""):
            name += f", {int(shots)}-shot"
        results.append(
            EvalResult(
                task_type="text-generation",
                task_name="Text Generation",
                dataset_type=r["task"],
                dataset_name=r["task"],
                metric_type=r["metric"],
                metric_value=round(float(r["value"]), 6),
                metric_name=name,
                source_name=f"{source} (lm-evaluation-harness)",
                source_url="https://github.com/EleutherAI/lm-evaluation-harness",
            )
        )
    card.data.model_name = repo_name
    card.data.eval_results = results or None
    text = str(card)
    marker = "\n## Evaluation (mergelab)\n"
    text = text.split(marker)[0].rstrip() + "\n"
    lines = [marker]
    if harness_rows:
        lines += [
            "lm-evaluation-harness, primary metric of each task (all metrics in the model-index), with its "
            "bootstrap percentile interval over the task's items:",
            "",
            "| task | metric | value | interval | stderr |",
            "|---|---|---|---|---|",
        ]
        for r in harness_rows:
            interval = f"[{_num(r.get('ci_low'))}, {_num(r.get('ci_high'))}]" if _num(r.get("ci_low")) else ""
            lines.append(
                f"| {r['task']} | {r['metric']} | {float(r['value']):.4f} | {interval} | {_num(r.get('stderr'))} |"
            )
    if comparison_rows:
        first = comparison_rows[0]
        lines += [
            "",
            f"Against its parents, paired on the same items (n): the difference with its "
            f"{100 * (1 - float(first['alpha'])):g}% bootstrap interval, the p-value adjusted "
            f"({first['correction']}) across the campaign's comparisons, and the verdict at alpha "
            f"{float(first['alpha']):g}:",
            "",
            "| task | compared with | n | difference | interval | adjusted p | verdict | test |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in comparison_rows:
            lines.append(
                f"| {r['task']} | {r['parent']} ({r['relation']}) | {int(r['n'])} | {_num(r['diff'])} | "
                f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {_num(r['p_adjusted'])} | {r['verdict']} | {r['test']} |"
            )
    if competence_rows:
        lines += [
            "",
            "Holmes linguistic probing (mean over datasets; winning rate among the models evaluated together):",
            "",
            "| competence | mean F1 | mean Pearson | winning rate |",
            "|---|---|---|---|",
        ]
        for r in competence_rows:
            lines.append(
                "| {competence} | {f1} | {pr} | {wr} |".format(
                    competence=r["competence"],
                    f1=_num(r.get("mean_f1")),
                    pr=_num(r.get("mean_pearson")),
                    wr=_num(r.get("winning_rate"), 1),
                )
            )
    return text + "\n".join(lines) + "\n"


def _num(v, digits: int = 4) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if f != f else f"{f:.{digits}f}"


def push_card(repo_id: str, card_text: str, *, retries: int = 4, wait: float = 2.0) -> Dict[str, Any]:
    from huggingface_hub import HfApi

    api = HfApi()
    info = with_retries(
        lambda: api.upload_file(
            path_or_fileobj=card_text.encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            commit_message="mergelab: evaluation results",
        ),
        f"updating the card of {repo_id}",
        retries,
        wait,
    )
    return {"repo_id": repo_id, "commit_id": info.oid, "commit_url": info.commit_url}
