"""Every place a mergekit config names a model, found without importing mergekit.

mergekit 0.1.5 reads a model reference (a path, a hub id, or a mergelab model key
before the plan replaces it) in these places of a merge config
(mergekit.config.MergeConfiguration and mergekit.tokenizer.config):

- ``base_model``, at the top, in every output slice and in every module;
- ``model`` of every entry of ``models`` and of every slice's ``sources``
  (also inside ``modules``);
- ``tokenizer_source``, unless it is ``base`` or ``union``;
- the ``tokenizer:`` block: its ``source`` (unless ``base`` or ``union``), and
  each token's ``source``, a reference itself or ``{kind: model_token, model: ...}``;

and in a mergekit-moe config, ``base_model`` and each expert's ``source_model``.
The plan (substituting keys, collecting inputs) and the merge job (hub parents
replaced by their local snapshots) both walk configs with ``map_refs``; a test
checks the list against mergekit's own config classes.
"""

from __future__ import annotations

from typing import Any, Callable, List

REF_KEYS = ("model", "base_model", "source_model")  # always a reference, where the value is a string
KEYWORD_SOURCES = ("base", "union")  # tokenizer sources that name no model


def _is_ref(key: str, value: Any, in_tokenizer: bool) -> bool:
    if not isinstance(value, str):
        return False
    if key in REF_KEYS:
        return True
    if key == "tokenizer_source" or (in_tokenizer and key == "source"):
        return value not in KEYWORD_SOURCES
    return False


def map_refs(cfg: Any, fn: Callable[[str], str]) -> Any:
    """A copy of the mergekit config ``cfg`` with ``fn(ref)`` in place of every model reference."""

    def walk(node: Any, in_tokenizer: bool) -> Any:
        if isinstance(node, dict):
            return {
                k: fn(v) if _is_ref(k, v, in_tokenizer) else walk(v, in_tokenizer or k == "tokenizer")
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v, in_tokenizer) for v in node]
        return node

    return walk(cfg, False)


def refs(cfg: Any) -> List[str]:
    """Every model reference of ``cfg``, each once, in the order they appear."""
    found: List[str] = []

    def note(ref: str) -> str:
        if ref not in found:
            found.append(ref)
        return ref

    map_refs(cfg, note)
    return found
