"""Run one merge through mergekit's Python API and write its model card."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from mergelab.hub import agreed_license, snapshot_path
from mergelab.merging.storage import check_against_record
from mergelab.plan.refs import map_refs, refs
from mergelab.runtime.checkpoint import check_model_dir
from mergelab.runtime.jobs import JobError, atomic_dir

log = logging.getLogger("mergelab.merge")


def referenced_dirs(cfg: Dict[str, Any]) -> List[str]:
    """Local model directories a mergekit config names (hub ids are skipped), wherever mergekit
    reads a model (mergelab.plan.refs)."""
    return [r for r in refs(cfg) if r.startswith("/")]


def local_snapshots(cfg: Dict[str, Any], receipts: Dict[str, str]) -> Dict[str, Any]:
    """cfg with every hub parent's reference replaced by the local snapshot its fetch receipt
    names, wherever mergekit reads a model (the tokenizer block too)."""
    if not receipts:
        return cfg

    paths = {ref: snapshot_path(receipt) for ref, receipt in receipts.items()}
    return map_refs(cfg, lambda ref: paths.get(ref, ref))


def check_inputs(cfg: Dict[str, Any]) -> None:
    """Fail with one line naming the file before mergekit starts when an input model dir is broken."""
    for path in referenced_dirs(cfg):
        check_model_dir(path)


def tool_versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mergekit", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def model_card(merge_id: str, meta: Dict[str, Any], config_yaml: str) -> str:
    """A Hub-style card: YAML metadata, then what was merged and how."""
    front: Dict[str, Any] = {}
    hub_parents = meta.get("hub_parents") or []
    if hub_parents:
        front["base_model"] = hub_parents
    if meta.get("license"):
        front["license"] = meta["license"]
    front["library_name"] = "transformers"
    front["tags"] = ["merge", "mergekit", "mergelab"]
    method = meta["method"]
    if meta.get("method_url"):
        method = f"[{meta.get('method_name') or method}]({meta['method_url']})"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        f"# {merge_id}",
        "",
        f"A merge of pre-trained language models made with [mergekit](https://github.com/arcee-ai/mergekit)"
        f" by mergelab, using the {method} method.",
        "",
        "| | |",
        "|---|---|",
        f"| recipe | `{meta['recipe']}` |",
        f"| method | `{meta['method']}` |",
        f"| models | {', '.join(f'`{m}`' for m in meta.get('inputs', []))} |",
        f"| parameters | `{json.dumps(meta.get('parameters', {}), sort_keys=True)}` |",
        f"| random seed | {meta['seed']} |",
        *[f"| {k} | {v} |" for k, v in meta.get("versions", {}).items()],
        "",
        *(["## Lineage", "", *lineage_lines(meta["lineage"]), ""] if meta.get("lineage") else []),
        "## mergekit configuration",
        "",
        "```yaml",
        config_yaml.rstrip(),
        "```",
    ]
    return "\n".join(lines) + "\n"


def lineage_lines(tree: Dict[str, Any], depth: int = 0) -> List[str]:
    """A merge of merges as a nested list, down to the parents (mergelab.plan Experiment.lineage)."""
    if "method" in tree:
        what = f"{tree['method']} merge, recipe `{tree['recipe']}`"
    else:
        what = tree["kind"] + (f" `{tree['location']}`" if tree.get("location") and tree["kind"] == "hub" else "")
    out = [f"{'  ' * depth}- `{tree['model']}`: {what}"]
    for sub in tree.get("inputs", []):
        out += lineage_lines(sub, depth + 1)
    return out


MOE_DOCS = "https://github.com/arcee-ai/mergekit/blob/main/docs/moe.md"


def _check_written(tmp: Path, config_file: str) -> None:
    missing = [f for f in ("config.json", config_file) if not (tmp / f).exists()]
    if not any(tmp.glob("*.safetensors")):
        missing.append("*.safetensors")
    if not (tmp / "tokenizer_config.json").exists():
        missing.append("the tokenizer")
    if missing:
        raise JobError(f"mergekit finished without writing {', '.join(missing)}")


def run_moe(
    cfg: Dict[str, Any],
    out_dir: os.PathLike,
    *,
    seed: int,
    cuda: bool,
    threads: Optional[int] = None,
    meta: Optional[Dict[str, Any]] = None,
) -> None:
    """Build a mixture-of-experts model (mergekit-moe's API) from ``cfg`` into ``out_dir`` atomically."""
    check_inputs(cfg)
    import torch
    import transformers
    from mergekit.merge import MergeOptions
    from mergekit.moe.config import MoEMergeConfig, is_bad_config
    from mergekit.scripts.moe import build

    try:
        config = MoEMergeConfig.model_validate(cfg)
    except Exception as e:  # pydantic ValidationError
        raise JobError(f"mergekit-moe rejects the config: {str(e).splitlines()[0]}") from e
    if is_bad_config(config):
        raise JobError("mergekit-moe rejects the config (its reason is in the lines above)")
    device = "cuda" if cuda else "cpu"
    options = MergeOptions(
        cuda=cuda,
        device=device,
        random_seed=seed,
        copy_tokenizer=True,
        lazy_unpickle=False,
        num_threads=threads,
        quiet=True,
    )
    transformers.set_seed(seed)  # gate modes random / uniform_random draw from torch's generator
    if threads:
        torch.set_num_threads(threads)
    config_text = yaml.safe_dump(cfg, sort_keys=False)
    log.info("building MoE %s (gate mode %s) on %s with seed %d", Path(out_dir).name, cfg["gate_mode"], device, seed)
    with atomic_dir(out_dir) as tmp:
        try:
            build(config, str(tmp), options, device=device)
        except SystemExit as e:  # mergekit-moe exits when no output architecture fits
            raise JobError(
                "mergekit-moe found no output architecture for these models and settings "
                "(its reasons are in the lines above)"
            ) from e
        (tmp / "mergekit_moe_config.yml").write_text(config_text, encoding="utf-8")
        if meta is not None:
            meta = dict(
                meta,
                versions=tool_versions(),
                method_name="mixture of experts (mergekit-moe)",
                method_url=MOE_DOCS,
                license=agreed_license(referenced_dirs(cfg)),
            )
            (tmp / "README.md").write_text(model_card(Path(out_dir).name, meta, config_text), encoding="utf-8")
        _check_written(tmp, "mergekit_moe_config.yml")
        check_against_record(Path(out_dir).name, tmp)


def run_merge(
    cfg: Dict[str, Any],
    out_dir: os.PathLike,
    *,
    seed: int,
    cuda: bool,
    threads: Optional[int] = None,
    meta: Optional[Dict[str, Any]] = None,
) -> None:
    """Merge ``cfg`` (a mergekit config dict) into ``out_dir`` atomically."""
    if "experts" in cfg:  # method moe: a mergekit-moe config
        return run_moe(cfg, out_dir, seed=seed, cuda=cuda, threads=threads, meta=meta)
    check_inputs(cfg)
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions
    from mergekit.merge import run_merge as mergekit_run_merge

    try:
        merge_config = MergeConfiguration.model_validate(cfg)
    except Exception as e:  # pydantic ValidationError or mergekit's RuntimeError
        raise JobError(f"mergekit rejects the merge config: {str(e).splitlines()[0]}") from e
    options = MergeOptions(
        cuda=cuda,
        random_seed=seed,
        copy_tokenizer=True,
        write_model_card=True,
        lazy_unpickle=False,
        num_threads=threads,
        quiet=True,
    )
    # mergekit would dump the config after normalising it in place (modules,
    # slices, layer ranges); keep the form the merge was asked for, which
    # `mergekit-yaml mergekit_config.yml OUT` reproduces.
    config_text = yaml.safe_dump(cfg, sort_keys=False)
    log.info("merging %s on %s with seed %d", Path(out_dir).name, "cuda" if cuda else "cpu", seed)
    with atomic_dir(out_dir) as tmp:
        mergekit_run_merge(merge_config, str(tmp), options=options, config_source=config_text)
        if meta is not None:
            from mergekit.merge_methods import registry

            spec = registry.get(merge_config.merge_method).spec
            meta = dict(
                meta,
                versions=tool_versions(),
                method_name=spec.pretty_name or spec.name,
                method_url=spec.reference_url,
                license=agreed_license(referenced_dirs(cfg)),
            )
            card = model_card(Path(out_dir).name, meta, config_text)
            (tmp / "README.md").write_text(card, encoding="utf-8")
        _check_written(tmp, "mergekit_config.yml")
        check_against_record(Path(out_dir).name, tmp)
