"""Cheap checks of a model directory, standard library only: what can be known without loading a tensor.

A model directory is usable when its config.json is a JSON object and its weights
are there: the shards a ``*.index.json`` names exist, and every safetensors file
has a well-formed header (an 8-byte length, a JSON header that fits in the file,
every tensor's byte range inside the data and as long as its shape and dtype
say). That catches what happens to real checkpoints (a 0-byte file, a copy cut
short, a shard missing, random bytes) before any job loads them, and costs a few
KB of reading per shard, whatever the model's size. The workflow runs it on every
local parent while the config is read, and every job runs it on its model
directory before loading anything; ``header`` serves the size estimate
(mergelab.plan.resources).
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Dict, List

from mergelab.runtime.jobs import JobError

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
# Bytes per element of each safetensors dtype.
ELEMENT_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


class CheckpointError(JobError, ValueError):
    """A model directory that cannot be loaded; the message names the file and what is wrong (a
    JobError: a job that meets one says that one line)."""


def header(path: os.PathLike) -> Dict[str, Any]:
    """The parsed header of a safetensors file, checked against the file's size."""
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({size} bytes; the header length alone takes 8)")
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > MAX_HEADER or n > size - 8:
            raise CheckpointError(
                f"{path}: not a safetensors file, or cut short (a header of {n} bytes in a file of {size})"
            )
        raw = fh.read(n)
    try:
        head = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(head, dict):
        raise CheckpointError(f"{path}: not a safetensors file (its header is not a JSON object)")
    data = size - 8 - n
    for name, t in head.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (int(x) for x in t["data_offsets"])
            numel = math.prod(int(d) for d in t["shape"])
            dtype = t["dtype"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has no valid dtype, shape and data_offsets") from None
        if not 0 <= start <= end <= data:
            raise CheckpointError(
                f"{path}: tensor {name!r} lies at bytes {start}-{end} of {data} bytes of data: the file is cut short"
            )
        if dtype in ELEMENT_BYTES and end - start != numel * ELEMENT_BYTES[dtype]:
            raise CheckpointError(
                f"{path}: tensor {name!r} ({dtype}, shape {t['shape']}) takes {end - start} bytes, "
                f"not {numel * ELEMENT_BYTES[dtype]}"
            )
    return head


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: {what} is not text") from None
    except ValueError as e:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({e})") from None


def weight_files(model_dir: os.PathLike) -> List[Path]:
    """The weights files of a model directory: the shards its index names (each must
    exist), else its *.safetensors, else its *.bin; empty when it has none."""
    d = Path(model_dir)
    for name in INDEXES:
        index = d / name
        if index.is_file():
            wmap = _read_json(index, "the weights index")
            wmap = wmap.get("weight_map") if isinstance(wmap, dict) else None
            if not isinstance(wmap, dict) or not wmap:
                raise CheckpointError(f"{index}: the weights index has no weight_map")
            files = [d / f for f in sorted(set(map(str, wmap.values())))]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise CheckpointError(f"{index}: names shard(s) that do not exist: {', '.join(missing)}")
            return files
    return sorted(d.glob("*.safetensors")) or sorted(d.glob("*.bin"))


def check_model_dir(model_dir: os.PathLike) -> None:
    """Raise CheckpointError, naming the file, unless ``model_dir`` looks loadable."""
    d = Path(model_dir)
    if not d.is_dir():
        raise CheckpointError(f"{d}: model directory does not exist")
    cfg = d / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{d}: not a model directory (no config.json)")
    if not isinstance(_read_json(cfg, "the model config"), dict):
        raise CheckpointError(f"{cfg}: the model config is not a JSON object")
    files = weight_files(d)
    if not files:
        raise CheckpointError(f"{d}: no weights (model.safetensors, shards with an index, or *.bin)")
    for f in files:
        if f.suffix == ".safetensors":
            header(f)
        elif f.stat().st_size == 0:
            raise CheckpointError(f"{f}: empty weights file")
