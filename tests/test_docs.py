"""The documentation: the generated config reference is current and complete, links resolve, README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mergelab.schema_docs import render, rows

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
REFERENCE = REPO / "docs" / "configuration.md"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_configuration_reference_is_generated_from_the_schema():
    assert REFERENCE.read_text() == render(schema()), (
        "docs/configuration.md is out of date with workflow/schemas/config.schema.yaml: "
        "run `python scripts/make_config_docs.py` and commit the result"
    )


def key_paths(node: dict, root: dict, path: str = "") -> list[str]:
    """Every key path below node, walked independently of the generator: $ref followed, `<name>` for
    the keys of a map, `[]` for list items."""
    while "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out = []
    for key, sub in node.get("properties", {}).items():
        out += [f"{path}.{key}" if path else key] + key_paths(sub, root, f"{path}.{key}" if path else key)
    if isinstance(node.get("additionalProperties"), dict):
        out += [f"{path}.<name>"] + key_paths(node["additionalProperties"], root, f"{path}.<name>")
    if isinstance(node.get("items"), dict):
        out += key_paths(node["items"], root, f"{path}[]")
    for word in ("anyOf", "oneOf", "allOf"):
        for alt in node.get(word, []):
            out += key_paths(alt, root, path)
    return out


def test_every_key_of_the_schema_is_in_the_reference():
    s = schema()
    paths = key_paths(s, s)
    assert len(paths) > 100 and {
        "harness.settings.batch_size",
        "models.<name>.dtype",
        "merges[].methods",
        "harness.task_settings.<name>.num_fewshot",
    } <= set(paths)
    text = REFERENCE.read_text()
    missing = [p for p in paths if f"| `{p}` |" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}: run `python scripts/make_config_docs.py`"


def test_the_generator_follows_alternatives_and_stops_at_recursion():
    s = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"type": "integer"}}}]},
            "b": {"oneOf": [{"$ref": "#/$defs/n"}, {"type": "null"}], "default": None},
            "c": {"type": "array", "items": {"$ref": "#/$defs/tree"}},
        },
        "$defs": {
            "n": {"type": "object", "properties": {"k": {"enum": ["p", None], "description": "a | b"}}},
            "tree": {"type": "object", "properties": {"sub": {"$ref": "#/$defs/tree"}}},
        },
    }
    got = {r.path: r for r in rows(s)}
    assert list(got) == ["a", "a.x", "b", "b.k", "c", "c[].sub"]
    assert got["a"].type == "string or object" and got["b"].default == "`null`"
    assert got["b.k"].type == "one of `p`, `null`"
    assert "| `b.k` | one of `p`, `null` | – | a \\| b |" in render(s)


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\[[^\]]+\]:\s*(\S+)", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a page: lower case, punctuation but - and _ dropped, spaces to -."""
    heads = re.findall(r"^#+\s+(.*?)\s*$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_relative_links_point_to_files():
    broken = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text())
        for m in LINK.finditer(text):
            target, _, anchor = (m.group(1) or m.group(2)).partition("#")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # a URL
            path = page.parent / target if target else page
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.relative_to(REPO)}: {target}#{anchor} (no such heading)")
    assert not broken, broken
    assert len(PAGES) >= 8


def test_readme_is_short():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; the details belong in docs/"
