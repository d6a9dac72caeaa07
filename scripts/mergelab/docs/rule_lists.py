"""The rule names the docs and the SLURM profile list, written from the rule table
(mergelab.plan.rules), so that a new rule needs no hand edit outside its four files.

- the parenthesis after "Every GPU rule" and "Light rules" / "light rules" in a page: the names of
  the table's GPU and light rules, in table order, wrapped as the text around them is;
- profiles/slurm/config.yaml's ``set-resources`` and ``set-threads``: one line per GPU rule. The
  first GPU rule's entry holds the ``&gpu-job`` anchor (where a cluster's partition and GPU model go)
  and is kept as written; every other GPU rule gets ``*gpu-job``; a rule's comment and its threads
  are kept, a new rule gets 4 threads. Lines of other rules (the light rules' partition) are kept.
"""

from __future__ import annotations

import re
from typing import Dict, List

from mergelab.plan.rules import RULES, gpu_rules

WIDTH = 100  # where a list is wrapped, as the hand-written text around it
THREADS = 4  # a GPU job's CPUs (--cpus-per-task) unless the profile says otherwise


def light_rules() -> List[str]:
    return [name for name, r in RULES.items() if r.light]


def _wrapped(names: List[str], column: int, prefix: str) -> str:
    """``names`` joined by ", ", starting at ``column`` of its line; a line that would pass WIDTH
    breaks before the name, and the next line starts with ``prefix``."""
    out, col = "", column
    for i, name in enumerate(names):
        word = name + ("," if i < len(names) - 1 else "")
        if i and col + 1 + len(word) > WIDTH:
            out += "\n" + prefix
            col = len(prefix)
        elif i:
            out += " "
            col += 1
        out += word
        col += len(word)
    return out


def fill_list(text: str, lead: str, names: List[str]) -> str:
    """``text`` with the parenthesis after each ``lead`` holding ``names``. A wrapped line keeps
    the indent and the comment mark (``#``) of the line the list starts on."""

    def sub(m: re.Match) -> str:
        opened = m.end(1)  # just after the "("
        before = text[text.rfind("\n", 0, opened - 1) + 1 : opened]  # the line of "(", up to and with it
        prefix = re.match(r"[ \t]*(?:#[ \t]*)?", before).group(0)
        return text[m.start() : opened] + _wrapped(names, len(before), prefix)

    return re.sub(re.escape(lead) + r"(\s*\()[^)]*", sub, text)


def fill_lists(text: str) -> str:
    """Every GPU-rule and light-rule list of a page, from the table."""
    text = fill_list(text, "Every GPU rule", gpu_rules())
    for lead in ("Light rules", "light rules"):
        text = fill_list(text, lead, light_rules())
    return text


def _block(lines: List[str], key: str) -> range:
    """The lines of top-level mapping ``key``'s entries (indented, after ``key:``), comments kept."""
    start = lines.index(f"{key}:\n") + 1
    end = start
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return range(start, end)


ENTRY = re.compile(r"^  ([a-z_]+):\s*([^#\n]*?)\s*(#.*)?$")


def _entries(lines: List[str], block: range) -> Dict[str, tuple]:
    """rule name -> (value, comment) of the block's entries for rules of the table."""
    out = {}
    for i in block:
        m = ENTRY.match(lines[i].rstrip("\n"))
        if m and m.group(1) in RULES:
            out[m.group(1)] = (m.group(2), m.group(3) or "")
    return out


def _entry(name: str, value: str, comment: str) -> str:
    return f"  {name}: {value}" + (f"  {comment}" if comment else "") + "\n"


def fill_profile(text: str) -> str:
    """profiles/slurm/config.yaml with one set-resources and one set-threads line per GPU rule."""
    gpu = gpu_rules()
    text = fill_lists(text)
    lines = text.splitlines(keepends=True)
    for key in ("set-resources", "set-threads"):
        block = _block(lines, key)
        old = _entries(lines, block)
        if key == "set-resources":
            anchor = next((n for n, (v, _) in old.items() if "&gpu-job" in v), None)
            if anchor is None:
                raise ValueError("profiles/slurm/config.yaml: set-resources has no `&gpu-job` entry to give GPU rules")
            values = {n: (old[anchor][0] if n == gpu[0] else "*gpu-job") for n in gpu}
        else:
            values = {n: old.get(n, (str(THREADS), ""))[0] for n in gpu}
        comments = {n: old.get(n, ("", ""))[1] for n in gpu}
        if key == "set-resources":  # the anchor's comment goes with it
            comments[gpu[0]] = old[anchor][1]
        body = [_entry(n, values[n], comments[n]) for n in gpu]
        kept, at = [], None  # the block less its GPU rules' lines; where the first entry was
        for i in block:
            m = ENTRY.match(lines[i].rstrip("\n"))
            if m and m.group(1) in old and at is None:
                at = len(kept)
            if not (m and m.group(1) in gpu):
                kept.append(lines[i])
        at = len(kept) if at is None else at
        lines[block.start : block.stop] = kept[:at] + body + kept[at:]
    return "".join(lines)
