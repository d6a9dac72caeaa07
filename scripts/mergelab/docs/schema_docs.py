"""Render the config schema as a Markdown reference (docs/configuration.md), and the defaults of
config/experiment.yaml's comments.

    python scripts/make_config_docs.py        # writes every generated doc (mergelab.docs.generated_docs)

The schema (workflow/schemas/config.schema.yaml) is JSON schema 2020-12 in
YAML. ``rows(schema)`` walks it into one ``Row`` per key path, with the
notation of the page:

- nested keys are dotted paths: ``harness.settings.batch_size``;
- a map keyed by names you choose (``additionalProperties`` with a schema) is
  ``<name>``: ``models.<name>.dtype``;
- the items of a list of objects are ``[]``: ``merges[].methods``;
- every ``$ref`` is resolved in place (keys beside the ``$ref`` win over the
  definition's), so a definition used in several places, such as
  ``$defs.settings``, appears under every path that uses it;
- the keys of ``anyOf`` / ``oneOf`` / ``allOf`` alternatives are listed under
  the key that holds them, and their types are joined with "or".

``render(schema)`` is the whole page; it is deterministic (schema order, no
dates). ``with_defaults(text, schema)`` puts above each top-level key of a config
file a comment block, ``# Defaults of <key> (generated from the schema):``, with
the value every key below it takes when left out (``defaults_block``); it
changes comments only. Only the standard library and PyYAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

SCHEMA = "workflow/schemas/config.schema.yaml"  # relative to the repository root
OUTPUT = "docs/configuration.md"
COMMAND = "python scripts/make_config_docs.py"
NAME = "<name>"  # a key of a map, chosen by the user
ITEM = "[]"  # every item of a list
ALTERNATIVES = ("anyOf", "oneOf", "allOf")


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    description: str


def load(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


# -- walking ------------------------------------------------------------------------------------------


def _pointer(root: dict, ref: str) -> dict:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, not {ref!r}")
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(node, root: dict) -> tuple[dict, tuple[str, ...]]:
    """The node with its $ref chain merged in (the referring node's keys win), and the refs followed."""
    if not isinstance(node, dict):
        return {}, ()
    refs: tuple[str, ...] = ()
    merged = dict(node)
    while "$ref" in merged:
        ref = merged.pop("$ref")
        if ref in refs:
            raise ValueError(f"$ref cycle: {' -> '.join(refs + (ref,))}")
        refs += (ref,)
        merged = {**_pointer(root, ref), **merged}
    return merged, refs


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def rows(schema: dict, root: dict | None = None, path: str = "") -> list[Row]:
    """One Row per key path below ``schema`` (deduplicated, first occurrence kept, schema order)."""
    root = schema if root is None else root
    seen: dict[str, Row] = {}
    for row in _children(schema, path, root, ()):
        seen.setdefault(row.path, row)
    return list(seen.values())


def _walk(node, path: str, root: dict, required: bool, stack: tuple[str, ...]):
    node, refs = resolve(node, root)
    if set(refs) & set(stack):  # a recursive schema: say so once instead of looping
        yield Row(path, "recursive: " + type_of(node, root), default_of(node, required), describe(node))
        return
    yield Row(path, type_of(node, root), default_of(node, required), describe(node))
    yield from _children(node, path, root, stack + refs)


def _children(node, path: str, root: dict, stack: tuple[str, ...]):
    node, refs = resolve(node, root)
    if set(refs) & set(stack):  # list items or an alternative that refer back up: not walked again
        return
    stack += refs
    required = set(node.get("required", []))
    for key, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, _join(path, key), root, key in required, stack)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _walk(extra, _join(path, NAME), root, False, stack)
    items = node.get("items")
    if isinstance(items, dict):
        yield from _children(items, path + ITEM, root, stack)
    for word in ALTERNATIVES:
        for alt in node.get(word) or []:
            yield from _children(alt, path, root, stack)


# -- cells --------------------------------------------------------------------------------------------


def flow(value) -> str:
    """A value as compact YAML (flow style), as you would write it in the config."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True)
    text = text.strip()
    return text.removesuffix("\n...").strip()


def _wrap(text: str) -> str:
    return f"({text})" if " or " in text or ", " in text else text


def _bounds(node: dict) -> str:
    out = []
    for word, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if word in node:
            out.append(f" {sign} {flow(node[word])}")
    return "".join(out)


def type_of(node, root: dict) -> str:
    node, _ = resolve(node, root)
    if "const" in node:
        return f"`{flow(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{flow(v)}`" for v in node["enum"])
    for word in ("anyOf", "oneOf"):
        if node.get(word):
            return " or ".join(_wrap(type_of(alt, root)) for alt in node[word])
    types = node.get("type")
    if types is None:
        if "properties" in node or "additionalProperties" in node:
            types = ["object"]
        elif "items" in node:
            types = ["array"]
        else:
            return "any"
    if isinstance(types, str):
        types = [types]
    parts = []
    for t in types:
        if t == "array" and isinstance(node.get("items"), dict):
            parts.append("array of " + _wrap(type_of(node["items"], root)))
        elif t == "object" and isinstance(node.get("additionalProperties"), dict) and not node.get("properties"):
            parts.append("map of " + _wrap(type_of(node["additionalProperties"], root)))
        elif t in ("integer", "number"):
            parts.append(t + _bounds(node))
        else:
            parts.append(t)
    return " or ".join(parts)


def default_of(node: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" in node:
        return f"`{flow(node['default'])}`"
    return "–"


def describe(node: dict) -> str:
    return " ".join(str(node.get("description", "")).split())


def prose(text: str, *, in_table: bool = False) -> str:
    """Markdown for schema text: outside code spans `*` and a `<` that could open an HTML tag are
    escaped (so `<root>` and `*.bin` show as written); in a table cell `|` is escaped everywhere."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: no code spans
        parts = [text.replace("`", "\\`")]
    out = []
    for i, part in enumerate(parts):
        if in_table:
            part = part.replace("|", "\\|")
        if i % 2 == 0:
            part = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", part.replace("*", "\\*"))
        out.append(part)
    return "`".join(out)


def cell(text: str) -> str:
    return prose(text, in_table=True)


def table(rows_: list[Row]) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for r in rows_:
        path = r.path.replace("|", "\\|")
        lines.append(f"| `{path}` | {cell(r.type)} | {cell(r.default)} | {cell(r.description)} |")
    return "\n".join(lines) + "\n"


# -- the page -----------------------------------------------------------------------------------------


def render(schema: dict, *, source: str = SCHEMA, command: str = COMMAND, source_link: str = "../" + SCHEMA) -> str:
    """The Markdown page: a generated-file header, then per top-level key a section with its table."""
    top, _ = resolve(schema, schema)
    sections = list((top.get("properties") or {}).items())
    if isinstance(top.get("additionalProperties"), dict):
        sections.append((NAME, top["additionalProperties"]))
    required = set(top.get("required", []))

    out = [
        "# Configuration reference\n",
        f"Generated from [`{source}`]({source_link}) by `{command}`. **Do not edit by hand**: change the "
        "schema (its descriptions are the text below) and run the command again; `tests/test_docs.py` "
        "fails while this page and the schema disagree. A guided tour of the settings is in "
        "[usage.md](usage.md).\n",
    ]
    if describe(top):
        out.append(prose(describe(top)) + "\n")
    out.append(
        "One row per key, as its dotted path from the top of the config file. `<name>` stands for a key you "
        "choose (a model name, a task, a pattern), `[]` for every item of a list. The default column shows the "
        "value a key takes when it is left out, as YAML; *required* keys have none.\n"
    )
    out.append("Top-level keys: " + ", ".join(f"[{key}](#{_anchor(key)})" for key, _ in sections) + ".\n")
    for key, sub in sections:
        out.append(f"## {key}\n")
        seen: dict[str, Row] = {}
        for r in _walk(sub, key, schema, key in required, ()):
            seen.setdefault(r.path, r)
        out.append(table(list(seen.values())))
    return "\n".join(out)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation except - and _ dropped, spaces to -."""
    text = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


# -- the defaults blocks of a config file (config/experiment.yaml) ------------------------------------

BLOCK = "# Defaults of {label} (generated from the schema):"
BLOCK_LINE = re.compile(r"^# Defaults of \S+ \(generated from the schema\):$")
ENTRY = "#   "  # the indent of a block's lines (and of the hand-written key lists above it)
WIDTH = 100  # a block line is wrapped at the items of its mapping or list beyond this
TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):")


def effective_default(node, root: dict, stack: tuple[str, ...] = ()) -> tuple[bool, object]:
    """(whether a key has a default, the value it takes when left out). An object whose default is a
    mapping is shown with its keys' defaults filled in (``harness.cache`` is ``{activate: true, ...}``,
    not ``{}``); what the default itself gives wins."""
    node, refs = resolve(node, root)
    if "default" not in node:
        return False, None
    value = node["default"]
    if isinstance(value, dict) and node.get("properties") and not set(refs) & set(stack):
        filled = {}
        for key, sub in node["properties"].items():
            has, sub_value = effective_default(sub, root, stack + refs)
            if has:
                filled[key] = sub_value
        value = {**filled, **value}
    return True, value


def section_defaults(schema: dict, key: str) -> tuple[str, list[tuple[str, object]]]:
    """(label, [(key, default)]) for a top-level key: its own keys, the keys of one value of a map
    (``models.<name>``) or of one item of a list (``merges[]``). Required keys have no default."""
    top, _ = resolve(schema, schema)
    node, _ = resolve(top["properties"][key], schema)
    label = key
    if not node.get("properties"):
        if isinstance(node.get("additionalProperties"), dict):
            node, label = resolve(node["additionalProperties"], schema)[0], _join(key, NAME)
        elif isinstance(node.get("items"), dict):
            node, label = resolve(node["items"], schema)[0], key + ITEM
    required = set(node.get("required", []))
    out = []
    for sub_key, sub in (node.get("properties") or {}).items():
        has, value = effective_default(sub, schema)
        if has and sub_key not in required:
            out.append((sub_key, value))
    return label, out


def _wrapped(prefix: str, value, width: int) -> list[str]:
    """``prefix`` + the value as flow YAML, wrapped after the items of a mapping or list, the next
    lines aligned after its bracket (so the block still reads as YAML without its ``#``)."""
    text = prefix + flow(value)
    if len(text) <= width or not isinstance(value, (dict, list)) or len(value) < 2:
        return [text]
    if isinstance(value, dict):
        items, (open_, close) = [flow({k: v})[1:-1] for k, v in value.items()], "{}"
    else:
        items, (open_, close) = [flow(v) for v in value], "[]"
    lines, line = [], prefix + open_
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else close)
        if i and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = "#" + " " * len(prefix) + piece
        else:
            line += (" " if i else "") + piece
    return lines + [line]


def defaults_block(schema: dict, key: str, width: int = WIDTH) -> list[str]:
    """The comment lines above top-level key ``key``: the header, then one ``#   key: value`` per key."""
    label, pairs = section_defaults(schema, key)
    lines = [BLOCK.format(label=label)]
    for sub_key, value in pairs:
        lines += _wrapped(f"{ENTRY}{sub_key}: ", value, width)
    return lines


def with_defaults(text: str, schema: dict) -> str:
    """The config file with a fresh defaults block right above each top-level key the schema knows;
    old blocks (a header line and the ``#   `` lines after it) are dropped first, wherever they are.
    Only comment lines change: the YAML data of the result must equal the input's."""
    top, _ = resolve(schema, schema)
    known = top.get("properties") or {}
    kept, in_block = [], False
    for line in text.split("\n"):
        if BLOCK_LINE.match(line):
            in_block = True
        elif not (in_block and line.startswith(ENTRY)):
            in_block = False
            kept.append(line)
    out = []
    for line in kept:
        m = TOP_KEY.match(line)
        if m and m.group(1) in known:
            out += defaults_block(schema, m.group(1))
        out.append(line)
    result = "\n".join(out)
    if yaml.safe_load(result) != yaml.safe_load(text):
        raise ValueError("the defaults blocks would change the config's data, not only its comments")
    return result
