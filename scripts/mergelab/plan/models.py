"""The models of an experiment: the parents (where each lives, how tools name it) and the merges."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mergelab.plan import paths
from mergelab.plan.errors import ConfigError
from mergelab.runtime.checkpoint import CheckpointError, check_model_dir

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # path | hub | demo; merge for a merge that a recipe reads (merge_model_spec)
    location: str  # absolute directory, or hub id
    revision: Optional[str] = None
    dtype: str = "auto"
    input_path: Optional[str] = None  # the rule input: the directory, or a hub model's fetch receipt
    gpus: Optional[int] = None
    resources: Optional[Dict[str, Any]] = None  # per-rule overrides of the size-based estimates

    @property
    def receipt(self) -> Optional[str]:
        """The fetch receipt naming the hub model's local snapshot."""
        return self.input_path if self.kind == "hub" else None

    @property
    def mergekit_ref(self) -> str:
        if self.kind == "hub" and self.revision:
            return f"{self.location}@{self.revision}"
        return self.location

    def describe(self, role: str) -> Dict[str, Any]:
        """What the tables and the provenance record of this model."""
        return {
            "role": role,
            "kind": self.kind,
            "location": self.location,
            "revision": self.revision,
            "dtype": self.dtype,
        }


@dataclass
class MergeSpec:
    id: str
    recipe: str
    method: str
    seed: int
    params: Dict[str, Any]  # what the recipe asked for, after defaults (per-model values as dicts)
    mergekit_config: Dict[str, Any]
    inputs: List[str]  # model keys the merge reads
    raw_file: Optional[str] = None
    dtype: str = "auto"  # the dtype its weights are written in
    gpus: Optional[int] = None
    resources: Optional[Dict[str, Any]] = None  # per-rule overrides of the size-based estimates
    parents: List[str] = field(default_factory=list)  # the models merged (the recipe's `models`)
    base: Optional[str] = None  # the recipe's base model
    swept: Tuple[str, ...] = ()  # the parameters its recipe sweeps for its method, in id order
    path_inputs: List[str] = field(default_factory=list)  # directories a raw file names by path (as inputs)

    @property
    def stacks_parents(self) -> bool:
        """Its result is as big as its inputs together (a passthrough stack, a mixture of experts)."""
        return self.method == "moe" or self.mergekit_config.get("merge_method") == "passthrough"

    def describe(self) -> Dict[str, Any]:
        """What the tables and the provenance record of this merge."""
        extra = {"path_inputs": self.path_inputs} if self.path_inputs else {}
        return {
            **extra,
            "role": "merge",
            "recipe": self.recipe,
            "method": self.method,
            "parameters": self.params,
            "seed": self.seed,
            "parents": self.parents,
            "base": self.base,
            "dtype": self.dtype,
            "mergekit_config": self.mergekit_config,
        }

    def record(self) -> Dict[str, Any]:
        """Its row of results/merges.tsv."""
        return {
            "model": self.id,
            "recipe": self.recipe,
            "method": self.method,
            "seed": self.seed,
            "inputs": list(self.inputs) + list(self.path_inputs),
            "parameters": self.params,
            "mergekit_config": self.mergekit_config,
        }


TABLE_COLUMNS = ["model", "recipe", "method", "seed", "inputs", "parameters", "mergekit_config"]
SEARCH_COLUMNS = ["search", "trial"]  # only when a search has proposed trials


def merges_tsv(records: List[Dict[str, Any]]) -> str:
    """results/merges.tsv: merge id -> recipe, method, seed, inputs, parameters, mergekit config
    (and, for a search's trials, the search and the trial number)."""
    columns = TABLE_COLUMNS + (SEARCH_COLUMNS if any("search" in r for r in records) else [])
    lines = ["\t".join(columns)]
    for r in records:
        cells = dict(
            r,
            seed=str(r["seed"]),
            inputs=",".join(r["inputs"]),
            parameters=json.dumps(r["parameters"], sort_keys=True),
            mergekit_config=json.dumps(r["mergekit_config"], sort_keys=True),
            search=r.get("search", ""),
            trial=str(r.get("trial", "")),
        )
        lines.append("\t".join(cells[c] for c in columns))
    return "\n".join(lines) + "\n"


def model_dtype(name: str, models: Mapping[str, ModelSpec], merges: Mapping[str, MergeSpec]) -> str:
    """The dtype a model's weights are in: a merge's as it is written, a parent's as configured
    (auto: as its config.json says)."""
    return merges[name].dtype if name in merges else models[name].dtype


def resolve_models(models_cfg: Mapping[str, dict], source: str, workdir: Path) -> Dict[str, ModelSpec]:
    """The `models:` section as ModelSpecs; a local directory must exist and hold a config.json."""
    out = {}
    for name, m in models_cfg.items():
        where = f"{source}: models.{name}"
        given = [k for k in ("path", "hub", "demo") if m.get(k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"{where}: give exactly one of path, hub, demo" + (f" (got {', '.join(given)})" if given else "")
            )
        kind = given[0]
        if m.get("revision") is not None and kind != "hub":
            raise ConfigError(f"{where}.revision: a revision pins a hub model; this model is a local {kind}")
        common = dict(dtype=m["dtype"], gpus=m.get("gpus"), resources=m.get("resources"))
        if kind == "hub":
            hub_id = m["hub"]
            if not HUB_ID.match(hub_id):
                raise ConfigError(f"{where}.hub: {hub_id!r} is not a Hub model id (expected owner/name)")
            out[name] = ModelSpec(
                name, "hub", hub_id, m.get("revision"), input_path=paths.FETCH_RECEIPT.format(model=name), **common
            )
        elif kind == "demo":
            rel = paths.DEMO_MODEL.format(name=m["demo"])
            path = (workdir / rel).resolve()
            if path.exists():  # trained by the demo_models rule; a broken one would never be trained again
                check_weights(path, f"{where}.demo", f" (delete {rel} to train it again)")
            out[name] = ModelSpec(name, "demo", str(path), input_path=rel, **common)
        else:
            raw = os.path.expanduser(m["path"])
            path = (workdir / raw).resolve()
            if "@" in str(path):
                raise ConfigError(f"{where}.path: '@' in a model path is not supported by mergekit: {raw}")
            if not path.is_dir():
                raise ConfigError(f"{where}.path: model directory does not exist: {raw}")
            if not (path / "config.json").is_file():
                raise ConfigError(f"{where}.path: not a model directory (no config.json): {raw}")
            check_weights(path, f"{where}.path")
            out[name] = ModelSpec(name, "path", str(path), input_path=paths.relative(str(path), workdir), **common)
    return out


def check_weights(path: Path, where: str, hint: str = "") -> None:
    """The cheap checks of mergelab.runtime.checkpoint (config.json, index, safetensors headers), as a ConfigError."""
    try:
        check_model_dir(path)
    except CheckpointError as e:
        raise ConfigError(f"{where}: {e}{hint}") from None
    except OSError as e:
        raise ConfigError(f"{where}: cannot read {e.filename}: {e.strerror}") from None


def merge_model_spec(spec: MergeSpec, workdir: Path) -> ModelSpec:
    """A merge as a model that later recipes read: its directory under results/models/."""
    rel = paths.MERGED_MODEL.format(model=spec.id)
    return ModelSpec(spec.id, "merge", str(workdir / rel), input_path=rel, dtype=spec.dtype)
