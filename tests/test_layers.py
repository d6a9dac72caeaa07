"""The package's layers: no import circle among its modules (imports inside functions count; an
import only for type checking does not), a bottom module of job I/O that imports nothing of ours,
and the presentation layer (tables and figures) imported by nothing below it."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SCRIPTS = REPO / "scripts"


def _type_checking_only(tree: ast.AST) -> set:
    """The import nodes under `if TYPE_CHECKING:` (no import at run time)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            out |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return out


def import_graph(root: Path = SCRIPTS) -> dict:
    """module -> the package's modules it imports anywhere in its file."""
    mods = {}
    for p in (root / "mergelab").rglob("*.py"):
        name = ".".join(p.relative_to(root).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        found = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mergelab"):
                for alias in node.names:  # `from mergelab import outputs` imports a module
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in mods else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("mergelab")}
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def circles(graph: dict) -> list:
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_the_package_s_modules():
    assert circles(import_graph()) == []
    # and the check sees one
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_bottom_imports_nothing_of_ours_and_nothing_imports_the_top():
    graph = import_graph()
    assert graph["mergelab.runtime.jobs"] == set()  # JobError, job_log, atomic outputs: the standard library only
    top = {"mergelab.analysis.outputs", "mergelab.analysis.plots"}  # presentation: the tables' and figures' building
    for name, deps in graph.items():
        if name not in top:
            assert not deps & top, f"{name} imports the presentation layer: {deps & top}"


def test_modules_stay_small_and_the_glue_stays_glue():
    """The sizes the project set itself: no module under scripts/ over 450 lines, the DAG glue
    (workflow/rules/common.smk) at most 200."""
    big = {str(p.relative_to(REPO)): n for p in SCRIPTS.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert big == {}
    assert len((REPO / "workflow" / "rules" / "common.smk").read_text().splitlines()) <= 200


# The package's folders, bottom first: each imports only folders before it (and the package's
# __init__). The plan is built while Snakemake builds the DAG, so it stands below every job stage.
LAYERS = ("runtime", "hub", "plan", "embedded", "merging", "evaluate", "analysis", "search", "docs")


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_breaches(graph: dict) -> list:
    """(importer, imported) pairs where a folder imports one at or after its own place (other than itself)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    out = []
    for name, deps in sorted(graph.items()):
        for dep in sorted(deps):
            a, b = _layer(name), _layer(dep)
            if a != b and b != "" and rank[b] >= rank[a]:
                out.append((name, dep))
    return out


def test_every_folder_imports_only_the_layers_below_it():
    graph = import_graph()
    assert {_layer(m) for m in graph} - {""} == set(LAYERS)  # a new folder takes its place in LAYERS
    assert layer_breaches(graph) == []
    # and the check sees one: the plan reaching up into a job stage
    assert layer_breaches({"mergelab.plan.x": {"mergelab.evaluate.y"}, "mergelab.evaluate.y": set()}) == [
        ("mergelab.plan.x", "mergelab.evaluate.y")
    ]
