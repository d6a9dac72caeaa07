"""The documentation: the generated docs are current and complete, links resolve, README stays short."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mergelab.docs import generated_docs
from mergelab.docs.generated_docs import generate, method_inputs, methods_table, replace_region, stale
from mergelab.docs.schema_docs import BLOCK_LINE, render, rows, with_defaults
from mergelab.plan.methods import METHODS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
REFERENCE = REPO / "docs" / "configuration.md"
EXPERIMENT = REPO / "config" / "experiment.yaml"
USAGE = REPO / "docs" / "usage.md"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_configuration_reference_is_generated_from_the_schema():
    assert REFERENCE.read_text() == render(schema()), (
        "docs/configuration.md is out of date with workflow/schemas/config.schema.yaml: "
        "run `python scripts/make_config_docs.py` and commit the result"
    )


def test_every_generated_doc_is_current():
    assert set(generate(REPO)) == {
        "docs/configuration.md",
        "docs/usage.md",
        "config/experiment.yaml",
        "workflow/schemas/config.schema.yaml",  # its rule lists (mergelab.docs.rule_lists), as the two below
        "docs/gpus-and-slurm.md",
        "profiles/slurm/config.yaml",
    }
    assert stale(REPO) == [], "run `python scripts/make_config_docs.py` (`make docs`) and commit the result"


GENERATED_INPUTS = [
    "workflow/schemas/config.schema.yaml",
    "docs/configuration.md",
    "docs/usage.md",
    "config/experiment.yaml",
    "docs/gpus-and-slurm.md",
    "profiles/slurm/config.yaml",
]


@pytest.fixture
def copy(tmp_path) -> Path:
    """The generated docs and what they are made from, copied (current) to tmp_path."""
    for rel in GENERATED_INPUTS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    assert stale(tmp_path) == []
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_a_hand_edit_of_a_generated_part_fails_the_check(copy):
    edit(copy / "docs/usage.md", "| della, della_linear |", "| della |")
    assert stale(copy) == ["docs/usage.md"]
    edit(copy / "config/experiment.yaml", "#   keep_merges: all\n", "#   keep_merges: none\n")
    assert stale(copy) == ["docs/usage.md", "config/experiment.yaml"]
    run = [sys.executable, str(REPO / "scripts" / "make_config_docs.py"), "--root", str(copy)]
    check = subprocess.run([*run, "--check"], capture_output=True, text=True)
    assert check.returncode == 1, check
    assert "docs/usage.md: out of date" in check.stderr and "config/experiment.yaml: out of date" in check.stderr
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout.count("written") == 2
    assert subprocess.run([*run, "--check"]).returncode == 0
    assert (copy / "docs/usage.md").read_text() == USAGE.read_text()
    assert (copy / "config/experiment.yaml").read_text() == EXPERIMENT.read_text()


def test_a_changed_source_makes_its_docs_stale(copy):
    # a default in the schema: the reference and the config's comments
    edit(copy / "workflow/schemas/config.schema.yaml", "default: 0.05", "default: 0.1")
    assert stale(copy) == ["docs/configuration.md", "config/experiment.yaml"]
    assert "#   alpha: 0.1\n" in generate(copy)["config/experiment.yaml"]
    # a mergelab default in the method catalogue: the table
    methods = dict(METHODS, ties=dataclasses.replace(METHODS["ties"], defaults={"weight": 0.5, "density": 0.7}))
    assert stale(copy, methods) == ["docs/configuration.md", "docs/usage.md", "config/experiment.yaml"]
    assert (
        "| ties | 1 or more models + the base | weight 0.5, density 0.7 |" in generate(copy, methods)["docs/usage.md"]
    )


def test_text_outside_the_generated_parts_is_the_authors(copy):
    edit(copy / "docs/usage.md", "## Methods and their defaults", "## Methods")
    edit(copy / "config/experiment.yaml", "#   seeds:      probe seeds\n", "#   seeds:      the probe seeds\n")
    assert stale(copy) == []


# ---- the method table of docs/usage.md


def usage_table() -> dict[str, tuple[str, str]]:
    """method -> (inputs, defaults), as the generated region of docs/usage.md shows them."""
    text = USAGE.read_text()
    region = text[text.index("<!-- BEGIN generated methods") : text.index("<!-- END generated methods -->")]
    out = {}
    for line in region.splitlines()[4:]:
        if line:
            names, inputs, defaults = (c.strip() for c in line.strip("|").split("|"))
            for name in names.split(", "):
                assert name not in out, name
                out[name] = (inputs, defaults)
    return out


def test_the_method_table_shows_every_method_with_its_contract_and_defaults():
    table = usage_table()
    assert sorted(table) == sorted(METHODS) and len(table) == 20
    for name, m in METHODS.items():
        inputs, defaults = table[name]
        for pname, value in m.defaults.items():
            assert f"{pname} {value:g}" in defaults, (name, pname)
        assert ("mergekit's" in defaults) == (not m.defaults and bool(m.params)), name
        assert ("base ignored" in inputs) == (m.base == "ignored"), name
        assert ("base optional" in inputs) == (m.base == "optional"), name
    assert table["ties"] == ("1 or more models + the base", "weight 0.5, density 0.5")
    assert table["model_stock"][0] == "2 or more models + the base"  # mergekit: 3 inputs, the base one of them
    assert table["linear"] == ("2 or more models (base ignored)", "weight 1")  # one would be a copy (refused)
    assert table["nuslerp"][0] == "exactly 2 models, base optional"
    assert table["slerp"][0].startswith("exactly 2 models, the first as the base")


def test_a_contract_the_table_has_no_words_for_is_an_error():
    odd = dataclasses.replace(METHODS["nuslerp"], max_inputs=3)
    with pytest.raises(ValueError, match="nuslerp: no words for this contract"):
        method_inputs(odd)
    assert methods_table().count("\n") == 2 + 14  # header, rule, one row per (inputs, defaults)


def test_only_the_marked_region_is_replaced():
    begin = generated_docs.begin_marker("t", "src")
    text = f"before\n{begin}\nold\n<!-- END generated t -->\nafter\n"
    assert replace_region(text, "t", "new\n", "src") == f"before\n{begin}\n\nnew\n\n<!-- END generated t -->\nafter\n"
    for bad in ("before\n", text + text, "<!-- END generated t -->\n" + begin + "\n"):
        with pytest.raises(ValueError, match="generated region 't'"):
            replace_region(bad, "t", "new\n", "src")


# ---- the defaults in config/experiment.yaml's comments


def blocks(text: str) -> dict[str, dict]:
    """label -> the block's keys and values, read back as YAML (its lines without the `#`)."""
    out, label, lines = {}, None, []
    for line in text.splitlines() + [""]:
        if BLOCK_LINE.match(line):
            label, lines = line.split()[3], []
        elif label and line.startswith("#   "):
            lines.append(line[1:])
        elif label:
            out[label] = yaml.safe_load("\n".join(lines))
            label = None
    return out


def schema_node(path: str, s: dict) -> dict:
    """The schema of a key path (`merges[].moe`, `models.<name>.dtype`), $refs followed."""
    node = s
    for part in re.findall(r"[^.\[\]]+|\[\]", path):
        while "$ref" in node:
            node = {**s["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        node = node["items"] if part == "[]" else node.get("properties", {}).get(part) or node["additionalProperties"]
    while "$ref" in node:
        node = {**s["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def leaves(value, path: str):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaves(v, f"{path}.{k}")
    else:
        yield path, value


def test_the_config_comments_show_the_schema_defaults():
    s, got = schema(), blocks(EXPERIMENT.read_text())
    assert list(got) == [
        "models.<name>", "merges[]", "search[]", "evaluation", "harness",
        "holmes", "hub", "sanity", "storage", "stats", "compute",
    ]  # fmt: skip
    checked = 0
    for label, keys in got.items():
        for path, value in leaves(keys, label):
            assert schema_node(path, s)["default"] == value, path
            checked += 1
    assert checked > 80
    assert got["harness"]["settings"]["batch_size"] == "auto" and got["merges[]"]["seeds"] == [0]
    assert got["hub"]["push"]["repo_name"] == "{model}" and got["stats"]["alpha"] == 0.05
    assert "name" not in got["merges[]"] and "objective" not in got["search[]"]  # required: no default


ALLOWED = ("the embedded default", "per-method defaults", "the defaults below", "# Defaults of <key>")


def test_the_hand_written_config_comments_state_no_default():
    """A default in the prose would drift from the schema: only the generated blocks state them."""
    prose, in_block = [], False
    for line in EXPERIMENT.read_text().splitlines():
        in_block = bool(BLOCK_LINE.match(line)) or (in_block and line.startswith("#   "))
        comment = line[line.index("#") :] if "#" in line and not in_block else ""
        for phrase in ALLOWED:
            comment = comment.replace(phrase, "")
        if "default" in comment.lower():
            prose.append(line)
    assert not prose, f"state these defaults only in the generated blocks: {prose}"


def test_the_defaults_blocks_change_comments_only():
    text = EXPERIMENT.read_text()
    bare = "\n".join(line for line in text.split("\n") if not (BLOCK_LINE.match(line) or line.startswith("#   ")))
    assert yaml.safe_load(bare) == yaml.safe_load(text)
    assert with_defaults(with_defaults(bare, schema()), schema()) == with_defaults(bare, schema())
    # a block left in the wrong place goes; each top-level key gets its own
    stray = text.replace(
        "# Parent models", "# Defaults of compute (generated from the schema):\n#   x: 1\n# Parent models"
    )
    assert with_defaults(stray, schema()) == text


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


# ---- the numbers the docs quote are the gallery's (issue 15)

GALLERY_BOARD = REPO / "docs" / "gallery" / "leaderboard.md"
ARITH, NOUNS, PPL = "mergelab_arithmetic", "mergelab_categories", "mergelab_text_ppl"
M = "math-words_"


def gallery_board() -> dict:
    """model -> column (the task, or e.g. 'Holmes winning rate') -> the number shown (before ±)."""
    rows = [line for line in GALLERY_BOARD.read_text().splitlines() if line.startswith("| ")]
    header = [c.strip().split(" (")[0] for c in rows[0].strip("|").split("|")]
    board = {}
    for line in rows[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        board[cells[0]] = {h: float(c.split()[0]) for h, c in zip(header[2:], cells[2:])}
    return board


def pct(v):
    return round(100 * v)


def of16(v):
    return round(16 * v)


# (file, pattern over the text with whitespace collapsed, (model, column, how the doc writes it) per group)
CLAIMS = [
    ("docs/demo.md", r"math (\d+)% exact match on held-out sums", [("math", ARITH, pct)]),
    ("docs/demo.md", r"words (\d+)/16 held-out nouns", [("words", NOUNS, of16)]),
    ("docs/demo.md", r"the base (\d+)% and (\d+)/16", [("base", ARITH, pct), ("base", NOUNS, of16)]),
    (
        "docs/demo.md",
        r"word perplexity (\d+) for the base, (\d+) and (\d+) for the experts",
        [("base", PPL, round), ("math", PPL, round), ("words", PPL, round)],
    ),
    ("docs/demo.md", r"at t = 0\.25 \(mostly math\) (\d+)% of the sums", [(M + "slerp_t0.25", ARITH, pct)]),
    ("README.md", r"at t = 0\.25 \(mostly math\) (\d+)% of the held-out sums", [(M + "slerp_t0.25", ARITH, pct)]),
    ("docs/demo.md", r"at t = 0\.75 \(mostly words\) (\d+)/16 nouns", [(M + "slerp_t0.75", NOUNS, of16)]),
    ("README.md", r"at t = 0\.75 \(mostly words\) (\d+)/16 nouns", [(M + "slerp_t0.75", NOUNS, of16)]),
    (
        "docs/demo.md",
        r"task_arithmetic (\d+)% of the sums and (\d+)/16 nouns",
        [(M + "task_arithmetic_w1", ARITH, pct), (M + "task_arithmetic_w1", NOUNS, of16)],
    ),
    (
        "docs/demo.md",
        r"(?<!dare_)ties (\d+)% and (\d+)/16",
        [(M + "ties_d0.5_w1", ARITH, pct), (M + "ties_d0.5_w1", NOUNS, of16)],
    ),
    (
        "docs/demo.md",
        r"dare_ties (\d+)% and (\d+)/16 with a broken perplexity \((\d+)\)",
        [(M + "dare_ties_d0.5_w1_s0", c, f) for c, f in ((ARITH, pct), (NOUNS, of16), (PPL, round))],
    ),
    ("docs/demo.md", r"perplexity closest to the base's \((\d+)\)", [(M + "moe_hidden_e2", PPL, round)]),
]


@pytest.mark.parametrize("doc, pattern, cells", CLAIMS, ids=[c[1][:40] for c in CLAIMS])
def test_quoted_numbers_are_the_gallery_leaderboard(doc, pattern, cells):
    """What README.md and docs/demo.md say about the default run is what docs/gallery/leaderboard.md
    shows; the full-run test (test_repo) keeps that table equal to what the default run gives."""
    text = " ".join((REPO / doc).read_text().split())
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{doc}: the claim {pattern!r} is not there exactly once: rewrite it here too"
    quoted = found[0] if isinstance(found[0], tuple) else (found[0],)
    board = gallery_board()
    for number, (model, column, how) in zip(quoted, cells):
        assert int(number) == how(board[model][column]), (doc, pattern, model, column, board[model][column])
