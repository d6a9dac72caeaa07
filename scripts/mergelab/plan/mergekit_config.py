"""A recipe's `mergekit_config`: a raw mergekit file as mergekit takes it, expanded into merges.

A single document is one merge (one per seed for a random method), named after the recipe. A
multi-document file (mergekit-multi's format) is a chain of merges: each named stage is the
merge `<recipe>-<stage>`, the unnamed document (else the last) the recipe's output. The models
a file names are resolved as a recipe's are (mergelab.plan.recipes.Recipe, passed in as
``recipe``): keys of models:, merges, local directories, else hub ids.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from mergelab.plan import paths
from mergelab.plan.errors import did_you_mean
from mergelab.plan.load import load_yaml_all, yaml_error_text
from mergelab.plan.methods import METHODS
from mergelab.plan.models import MergeSpec, ModelSpec, check_weights, merge_model_spec
from mergelab.plan.refs import map_refs, refs


def expand_raw(recipe) -> List[MergeSpec]:
    """A mergekit config file as mergekit takes it. A multi-document file (mergekit-multi's
    format: documents named by `name:`, later ones naming earlier ones) is a chain of merges:
    each named stage is the merge `<recipe>-<stage>`, and the unnamed document (else the last)
    is the recipe's output, `<recipe>`."""
    rel = recipe.r["mergekit_config"]
    path = (recipe.workdir / os.path.expanduser(rel)).resolve()
    key = "mergekit_config"
    if not path.is_file():
        recipe.fail(key, f"file not found: {rel}")
    try:
        with open(path, encoding="utf-8") as fh:
            docs = [d for d in load_yaml_all(fh) if d is not None]
    except yaml.YAMLError as e:
        recipe.fail(key, f"{rel} is not valid YAML{yaml_error_text(e)}")
    if not docs:
        recipe.fail(key, f"{rel} is empty")
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            what = f"{rel} (document {i + 1})" if len(docs) > 1 else rel
            recipe.fail(
                key, f"{what} must hold a mapping with merge_method and models/slices, got {type(doc).__name__}"
            )
    if len(docs) == 1 and "name" not in docs[0]:
        doc = docs[0]
        m = METHODS.get(doc.get("merge_method"))
        seeds = recipe.r["seeds"] if m and m.random else recipe.r["seeds"][:1]
        ids = [f"{recipe.name}_s{seed}" if m and m.random else recipe.name for seed in seeds]
        return [raw_spec(recipe, doc, rel, path, mid, seed, {}) for mid, seed in zip(ids, seeds)]
    return expand_stages(recipe, docs, rel, path)


def expand_stages(recipe, docs: List[dict], rel: str, path: Path) -> List[MergeSpec]:
    key = "mergekit_config"
    stages: Dict[str, dict] = {}
    unnamed = [i for i, d in enumerate(docs) if "name" not in d]
    if len(unnamed) > 1:
        recipe.fail(key, f"{rel}: documents {unnamed[0] + 1} and {unnamed[1] + 1} both lack a name: one output only")
    for i, d in enumerate(docs):
        name = d.get("name")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)):
            recipe.fail(key, f"{rel} (document {i + 1}): name {name!r} must be letters, digits, '.', '_', '-'")
        if name in stages:
            recipe.fail(key, f"{rel}: two documents are named {name!r}")
        stages[name] = {k: v for k, v in d.items() if k != "name"}
    output = None if unnamed else list(stages)[-1]
    seed = recipe.r["seeds"][0]
    if len(recipe.r["seeds"]) > 1:
        recipe.fail("seeds", "a multi-document mergekit_config takes one seed")
    ids = {s: recipe.name if s == output else f"{recipe.name}-{s}" for s in stages}
    # each stage after the stages it names (mergekit-multi's order), a cycle refused
    deps = {s: [r for r in refs(d) if r in stages] for s, d in stages.items()}
    order: List[Optional[str]] = []

    def visit(s, trail):
        if s in order:
            return
        if s in trail:
            cycle = " → ".join(str(x) for x in trail[trail.index(s) :] + [s])
            recipe.fail(key, f"{rel}: its stages name each other in a cycle: {cycle}")
        for d in deps[s]:
            visit(d, trail + [s])
        order.append(s)

    for s in stages:
        visit(s, [])
    made: Dict[str, ModelSpec] = {}
    out = []
    for s in order:
        spec = raw_spec(
            recipe, stages[s], f"{rel} ({'output' if s == output else 'stage ' + str(s)})", path, ids[s], seed, made
        )
        made[s] = merge_model_spec(spec, recipe.workdir)
        out.append(spec)
    return out


def raw_spec(
    recipe, doc: dict, rel: str, path: Path, merge_id: str, seed: int, stages: Dict[str, ModelSpec]
) -> MergeSpec:
    """One merge of a raw mergekit config; ``stages``: names the document may use for the
    merges of earlier stages of its file."""
    key = "mergekit_config"
    method = doc.get("merge_method")
    if method not in METHODS:
        recipe.fail(key, f"{rel}: merge_method {method!r} is not a mergekit method{did_you_mean(method, METHODS)}")
    forms = [k for k in ("models", "slices", "modules") if doc.get(k)]
    if len(forms) != 1:
        recipe.fail(key, f"{rel} must have exactly one of models, slices, modules (has {', '.join(forms) or 'none'})")
    used: List[str] = []
    local: List[str] = []
    cfg = map_refs(doc, lambda ref: ref_in_raw(recipe, ref, used, local, rel, stages))
    for k, v in recipe.common_keys().items():
        if k != "dtype":
            cfg.setdefault(k, v)
    if "tokenizer_source" not in doc and "tokenizer" not in doc:  # the recipe's, then
        used += [t for t in recipe.tokenizer_model() if t not in used]
    base_ref = doc.get("base_model")
    known = (stages.get(base_ref) or recipe.models.get(base_ref)) if isinstance(base_ref, str) else None
    base = known.name if known is not None else None
    return MergeSpec(
        merge_id,
        recipe.name,
        method,
        seed,
        {},
        copy.deepcopy(cfg),
        used,
        str(path),
        dtype=cfg.get("out_dtype") or cfg.get("dtype") or "auto",
        gpus=recipe.r.get("gpus"),
        resources=recipe.r.get("resources"),
        parents=[u for u in used if u != base],
        base=base,
        path_inputs=local,
    )


def ref_in_raw(recipe, name: str, used: List[str], local: List[str], rel: str, stages: Dict[str, ModelSpec]) -> str:
    """What the merge job gives mergekit for a model a raw file names: a stage of the same file,
    a key of models: or a merge (its directory; an input of the job), a local directory (an
    input too), else a hub id as it is."""
    spec = stages.get(name) or recipe.models.get(name)
    if spec is None and name in recipe.recipe_ids:
        spec = recipe.models.get(recipe.model_ref("mergekit_config", name))
    if spec is not None:
        if spec.name not in used:
            used.append(spec.name)
        return spec.mergekit_ref
    path = (recipe.workdir / os.path.expanduser(name)).resolve()
    if path.is_dir():
        where = f"{recipe.where}.mergekit_config: {rel}: model {name!r}"
        check_weights(path, where)
        shown = paths.relative(str(path), recipe.workdir)
        if shown not in local:
            local.append(shown)
        return str(path)
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        recipe.fail("mergekit_config", f"{rel}: model {name!r} is neither a key of models: nor an existing directory")
    if "/" not in name:  # a key-like name: maybe the merge of a recipe not expanded yet
        recipe.model_ref("mergekit_config", name)
    return name  # a hub id, used as-is
