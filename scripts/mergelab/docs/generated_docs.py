"""Every generated doc, in one list, and the merge-method table of docs/usage.md.

    python scripts/make_config_docs.py            # writes every file below that is out of date
    python scripts/make_config_docs.py --check    # writes nothing; exit 1 naming the stale ones

- docs/configuration.md: the whole page, from the config schema (``schema_docs.render``);
- docs/usage.md: the merge-method table only, between ``<!-- BEGIN generated methods ... -->`` and
  ``<!-- END generated methods -->``, from the method catalogue ``mergelab.plan.methods`` (which
  tests/test_methods_table.py keeps equal to mergekit's registry) and the plan's rule that a merge
  of one model is refused where mergekit would return it unchanged;
- config/experiment.yaml: the ``# Defaults of <key> (generated from the schema):`` comment block
  above each top-level key (``schema_docs.with_defaults``); its YAML data never changes;
- the rule names listed in workflow/schemas/config.schema.yaml (compute.light_rules),
  docs/gpus-and-slurm.md and profiles/slurm/config.yaml, and that profile's set-resources and
  set-threads lines of the GPU rules, from the rule table (``rule_lists``).

``generate(root)`` gives each file's text as it should be, read from the files under ``root`` (the
schema, and the hand-written parts of usage.md and experiment.yaml); tests/test_docs.py fails while
a committed file differs. Only the standard library, PyYAML and light mergelab modules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import yaml

from mergelab.docs import rule_lists, schema_docs
from mergelab.plan.methods import METHODS, Method
from mergelab.plan.recipes import ONE_INPUT_IS_A_COPY

COMMAND = schema_docs.COMMAND
USAGE = "docs/usage.md"
EXPERIMENT = "config/experiment.yaml"
METHODS_SOURCE = "scripts/mergelab/plan/methods.py"
GPUS = "docs/gpus-and-slurm.md"
PROFILE = "profiles/slurm/config.yaml"


# -- the merge-method table -----------------------------------------------------------------------------


def _count(low: int, high: int | None) -> str:
    if high == low:
        return f"exactly {low} model" + ("s" if low != 1 else "")
    if high is None:
        return f"{low} or more models"
    return f"{low} to {high} models"


def method_inputs(m: Method) -> str:
    """What a recipe gives a method, in words: the models of `models:` (never counting the base) and
    what becomes of `base:`. The counts are mergekit's contract (mergekit counts the base as an input)
    raised to 2 where the plan refuses a merge of one model (ONE_INPUT_IS_A_COPY)."""
    low_copy = 2 if m.name in ONE_INPUT_IS_A_COPY else 1
    if m.pair_with_base:
        return "exactly 2 models, the first as the base (or the recipe's base and one model)"
    if m.base == "ignored" and m.min_non_base is None and m.max_non_base is None:
        return _count(max(m.min_inputs, low_copy), m.max_inputs) + " (base ignored)"
    if m.base == "required" and m.min_non_base is None and m.max_non_base is None:
        high = None if m.max_inputs is None else m.max_inputs - 1
        return _count(max(m.min_inputs - 1, low_copy), high) + " + the base"
    if m.base == "optional" and m.min_inputs == 1 and m.max_inputs is None:
        return _count(max(m.min_non_base or 1, low_copy), m.max_non_base) + ", base optional"
    raise ValueError(f"{m.name}: no words for this contract yet ({m}): extend method_inputs")


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower()


def method_defaults(m: Method) -> str:
    """mergelab's defaults for the method, in the catalogue's order; "mergekit's" where it sets none
    (the parameters then take mergekit's own defaults), "–" for a method without parameters."""
    if m.defaults:
        return ", ".join(f"{name} {_number(value)}" for name, value in m.defaults.items())
    return "mergekit's" if m.params else "–"


def methods_table(methods: Mapping[str, Method] = METHODS) -> str:
    """The Markdown table: one row per set of methods with the same inputs and defaults, in the
    catalogue's order (a row where its first method comes)."""
    rows: dict[tuple[str, str], list[str]] = {}
    for m in methods.values():
        rows.setdefault((method_inputs(m), method_defaults(m)), []).append(m.name)
    lines = ["| method | inputs | mergelab defaults |", "|---|---|---|"]
    lines += [f"| {', '.join(names)} | {inputs} | {defaults} |" for (inputs, defaults), names in rows.items()]
    return "\n".join(lines) + "\n"


# -- regions of a hand-written page ---------------------------------------------------------------------


def begin_marker(name: str, source: str) -> str:
    return f"<!-- BEGIN generated {name}: from {source} by `{COMMAND}`; do not edit by hand -->"


def end_marker(name: str) -> str:
    return f"<!-- END generated {name} -->"


def replace_region(text: str, name: str, body: str, source: str) -> str:
    """``text`` with what lies between region ``name``'s markers (each alone on its line, once) replaced
    by ``body`` between blank lines (so Markdown never runs it into a marker); the begin marker is
    rewritten too, everything else is kept byte for byte."""
    begin = re.compile(rf"^<!-- BEGIN generated {re.escape(name)}:.*-->\n", re.M)
    end = re.compile(rf"^{re.escape(end_marker(name))}$", re.M)
    starts, ends = list(begin.finditer(text)), list(end.finditer(text))
    if len(starts) != 1 or len(ends) != 1 or ends[0].start() < starts[0].end():
        raise ValueError(
            f"the generated region {name!r} needs one line {begin_marker(name, source)!r} and after it "
            f"one line {end_marker(name)!r} ({len(starts)} and {len(ends)} found)"
        )
    return text[: starts[0].start()] + begin_marker(name, source) + "\n\n" + body + "\n" + text[ends[0].start() :]


# -- every generated file -------------------------------------------------------------------------------


def generate(root: str | Path, methods: Mapping[str, Method] = METHODS) -> dict[str, str]:
    """Path (relative to ``root``) -> the text the file should have."""
    root = Path(root)
    schema_text = rule_lists.fill_lists((root / schema_docs.SCHEMA).read_text())
    schema = yaml.safe_load(schema_text)
    usage = (root / USAGE).read_text()
    return {
        schema_docs.SCHEMA: schema_text,
        schema_docs.OUTPUT: schema_docs.render(schema),
        USAGE: replace_region(usage, "methods", methods_table(methods), METHODS_SOURCE),
        EXPERIMENT: schema_docs.with_defaults((root / EXPERIMENT).read_text(), schema),
        GPUS: rule_lists.fill_lists((root / GPUS).read_text()),
        PROFILE: rule_lists.fill_profile((root / PROFILE).read_text()),
    }


def stale(root: str | Path, methods: Mapping[str, Method] = METHODS) -> list[str]:
    """The generated files under ``root`` whose text is not what ``generate`` gives."""
    return list(_stale(Path(root), generate(root, methods)))


def _stale(root: Path, texts: dict[str, str]) -> dict[str, str]:
    return {
        path: text for path, text in texts.items() if not (root / path).exists() or (root / path).read_text() != text
    }


def write(root: str | Path) -> list[str]:
    """Write every stale generated file under ``root``; return their paths."""
    root = Path(root)
    changed = _stale(root, generate(root))
    for path, text in changed.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return list(changed)
