"""Every test's marks say what it holds (docs/development.md, "Tests"), checked on the suite's source.

What a test does is read from its AST, its module's helpers and constants, the helper modules of
tests/ it imports from (conftest, hubstub, envcheck) and the fixtures it requests (by parameter,
`usefixtures`, `request.getfixturevalue("...")`, autouse), followed to the end:

- it starts Snakemake: it refers to a Snakemake command (a module-level constant with the string
  "snakemake" in it, conftest's SNAKEMAKE) or it starts a process (subprocess.*, os.system) and
  names "snakemake" or a repository script that does (bench/gpu_check.py); conftest's snakemake(),
  snakemake_together(), trained_demo and default_run all come down to SNAKEMAKE;
- it needs the local SLURM cluster: it names scripts/local_slurm.sh (the slurm_cluster fixture);
- it builds a model bigger than the tests' tiny ones or trains one: mergelab.embedded.demo's
  build_demo_models with one of its SIZES other than "tiny" (the default, "demo", is trained), a
  size that is not a constant, or a schedule; train_demo_models, train_lm.

The rule: `workflow` exactly on the tests that start Snakemake or need SLURM; `slurm` exactly on
those that need SLURM; `slow` never with `workflow`, always on a test that builds a big model
without Snakemake, and on any other only with its measured time in a comment on the mark's line
(`@pytest.mark.slow  # ...: ~14 s on 2 cores`). And no `pytest.importorskip` of a package
requirements.lock pins: a pinned package that moves must fail the tests, not skip them.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

from mergelab.embedded.demo import SIZES

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

WORKFLOW, SLURM, SLOW = "workflow", "slurm", "slow"
STARTS, COMMAND, CLUSTER, MODEL = "starts Snakemake", "a Snakemake command", "needs SLURM", "builds a big model"

# String constants: Snakemake's executable or module, the local cluster's script, time in a comment.
SNAKEMAKE_WORD = re.compile(r"(?:^|/)snakemake$")
CLUSTER_SCRIPT = re.compile(r"(?:^|/)local_slurm\.sh$")
SCRIPT_FILE = re.compile(r"[\w.-]+\.(?:py|sh)$")
MEASURED_TIME = re.compile(r"#.*\d\s?(?:s|min)\b")
PROCESS_CALLS = {
    "subprocess": {"run", "Popen", "call", "check_call", "check_output"},
    "os": {"system", "popen", "execv", "execve", "execvp", "execvpe", "spawnv", "spawnvp"},
}
TRAINERS = {"train_demo_models", "train_lm"}


@dataclass
class Node:
    """A module-level function, class or assignment of a module of tests/; facts (analyse()):
    fact -> (why: a name it refers to, a fixture it requests or what it does itself; the definition
    that holds the fact, or None; the fact there)."""

    module: str
    name: str
    tree: ast.AST
    kind: str  # "function", "class", "assignment"
    refs: set = field(default_factory=set)  # (module, name) of the definitions it refers to
    fixtures: set = field(default_factory=set)  # fixture names it requests
    facts: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)  # ast.walk(tree)


@dataclass
class Module:
    name: str
    path: Path
    nodes: list  # ast.walk of the module
    lines: list
    defs: dict  # name -> Node
    imports: dict  # local name -> (helper module, name)
    fixtures: dict  # fixture name -> function name
    autouse: list
    marks: list  # the module's pytestmark: [(mark, line)]


def _call_name(func: ast.AST) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _is_process_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.attr in PROCESS_CALLS.get(node.func.value.id, ())
    )


def _docstrings(nodes: list) -> set:
    ids = set()
    for node in nodes:
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _strings(nodes: list) -> list:
    """The string constants among nodes (those of ast.walk), but docstrings."""
    skip = _docstrings(nodes)
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]


def _script_starts_snakemake(path: Path, seen: dict) -> bool:
    """A repository script that starts Snakemake: it names "snakemake" and starts a process (a
    Python script), or runs `snakemake` outside a comment (a shell script)."""
    if path not in seen:
        text = path.read_text()
        if path.suffix == ".sh":
            code = [line.split("#", 1)[0] for line in text.splitlines()]
            seen[path] = any(re.search(r"\bsnakemake\b", line) for line in code)
        else:
            nodes = list(ast.walk(ast.parse(text)))
            seen[path] = any(map(SNAKEMAKE_WORD.search, _strings(nodes))) and any(map(_is_process_call, nodes))
    return seen[path]


@functools.cache
def _repo_scripts() -> dict:
    """File name -> the paths of the Python and shell scripts of the repository with that name."""
    found: dict = {}
    for d in ("bench", "scripts", "workflow", "tests"):
        for p in (REPO / d).rglob("*"):
            if p.suffix in (".py", ".sh") and p.is_file():
                found.setdefault(p.name, []).append(p)
    return found


def _primitive_facts(node: Node, scripts: dict) -> dict:
    facts = {}
    strings = _strings(node.nodes)
    if any(map(CLUSTER_SCRIPT.search, strings)):
        facts[CLUSTER] = "names the local SLURM cluster's script"
    if node.kind == "assignment":
        if any(map(SNAKEMAKE_WORD.search, strings)):
            facts[COMMAND] = "names snakemake"
        return facts
    if any(map(_is_process_call, node.nodes)):
        if any(map(SNAKEMAKE_WORD.search, strings)):
            facts[STARTS] = "starts a process naming snakemake"
        for s in strings:
            m = SCRIPT_FILE.search(s)
            if m and any(_script_starts_snakemake(p, scripts) for p in _repo_scripts().get(m.group(0), [])):
                facts[STARTS] = f"runs {m.group(0)}, which starts Snakemake"
    for call in node.nodes:
        if not isinstance(call, ast.Call):
            continue
        name, kw = _call_name(call.func), {k.arg: k.value for k in call.keywords}
        if name in TRAINERS:
            facts[MODEL] = f"calls {name}"
        elif name == "build_demo_models":
            size = kw.get("size")
            size = size.value if isinstance(size, ast.Constant) else "demo" if size is None else "?"
            if "schedule" in kw or (size != "tiny" and (size in SIZES or size == "?")):  # an unknown one is refused
                facts[MODEL] = f"build_demo_models(size={size!r}{', schedule' if 'schedule' in kw else ''})"
    return facts


def _marks(decorators: list, lines: list) -> list:
    """[(mark name, its source line, the node)] of the pytest.mark.X among decorators (called or not)."""
    out = []
    for d in decorators:
        target = d.func if isinstance(d, ast.Call) else d
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Attribute)
            and target.value.attr == "mark"
            and isinstance(target.value.value, ast.Name)
            and target.value.value.id == "pytest"
        ):
            out.append((target.attr, lines[d.lineno - 1], d))
    return out


def _fixture_decorator(func: ast.FunctionDef) -> ast.AST | None:
    for d in func.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return d
    return None


def _locals(tree: ast.AST, nodes: list, helpers: set) -> set:
    """Names a function or class binds itself (a local ``snakemake = ...`` is not conftest's)."""
    names = set()
    for n in nodes:
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, ast.arg):
            names.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not tree:
            names.add(n.name)
        elif isinstance(n, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module not in helpers:
            names.update(a.asname or a.name for a in n.names)
    return names


def parse_module(path: Path, helpers: set) -> Module:
    """A module's definitions, what each refers to (in it and in the helper modules) and requests."""
    text = path.read_text()
    tree, lines, name = ast.parse(text), text.splitlines(), path.stem
    imports = {}
    walked = list(ast.walk(tree))
    for n in walked:  # ``from conftest import snakemake``, at the top or inside a function
        if isinstance(n, ast.ImportFrom) and n.module in helpers:
            imports.update({a.asname or a.name: (n.module, a.name) for a in n.names})
    mod = Module(name, path, walked, lines, {}, imports, {}, [], [])
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kind = "class" if isinstance(stmt, ast.ClassDef) else "function"
            mod.defs[stmt.name] = Node(name, stmt.name, stmt, kind)
            deco = None if kind == "class" else _fixture_decorator(stmt)
            if deco is not None:
                kw = {k.arg: k.value for k in deco.keywords} if isinstance(deco, ast.Call) else {}
                fixture = kw["name"].value if "name" in kw else stmt.name
                mod.fixtures[fixture] = stmt.name
                if isinstance(kw.get("autouse"), ast.Constant) and kw["autouse"].value:
                    mod.autouse.append(fixture)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            for t in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                if isinstance(t, ast.Name) and t.id == "pytestmark":
                    values = stmt.value.elts if isinstance(stmt.value, (ast.List, ast.Tuple)) else [stmt.value]
                    mod.marks = [(m, line) for m, line, _ in _marks(values, lines)]
                elif isinstance(t, ast.Name):
                    mod.defs[t.id] = Node(name, t.id, stmt.value, "assignment")
    for node in mod.defs.values():
        node.nodes = list(ast.walk(node.tree))
        local = _locals(node.tree, node.nodes, helpers) if node.kind != "assignment" else set()
        for n in node.nodes:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local and n.id != node.name:
                if n.id in mod.defs:
                    node.refs.add((name, n.id))
                elif n.id in mod.imports:
                    node.refs.add(mod.imports[n.id])
            elif isinstance(n, ast.Call) and _call_name(n.func) == "getfixturevalue":
                node.fixtures.update(a.value for a in n.args if isinstance(a, ast.Constant))
        if node.kind == "function" and (node.name.startswith("test") or node.name in mod.fixtures.values()):
            args = node.tree.args
            node.fixtures.update(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
            for m, _, d in _marks(node.tree.decorator_list, lines):
                if m == "usefixtures" and isinstance(d, ast.Call):
                    node.fixtures.update(a.value for a in d.args if isinstance(a, ast.Constant))
    return mod


def _fixture(modules: dict, module: str, fixture: str) -> tuple | None:
    """The (module, function) pytest gives for a fixture requested in module: its own, else conftest's."""
    for m in (module, "conftest"):
        if m in modules and fixture in modules[m].fixtures:
            return (m, modules[m].fixtures[fixture])
    return None


def analyse(modules: dict) -> dict:
    """Every definition's facts, fact -> (why, the definition it comes from or None, that one's fact):
    its own, and those of what it refers to and requests, to a fixed point. Returns them by (module, name)."""
    scripts: dict = {}
    nodes = {(m.name, n.name): n for m in modules.values() for n in m.defs.values()}
    for node in nodes.values():
        node.facts = {fact: (why, None, fact) for fact, why in _primitive_facts(node, scripts).items()}
    edges = {}
    for key, node in nodes.items():
        targets = [(r, r[1]) for r in sorted(node.refs) if r in nodes]
        for f in sorted(node.fixtures):
            target = _fixture(modules, node.module, f)
            if target is not None and target != key:
                targets.append((target, f"fixture {f}"))
        edges[key] = targets
    changed = True
    while changed:
        changed = False
        for key, node in nodes.items():
            for target, label in edges[key]:
                for fact in list(nodes[target].facts):
                    got = fact
                    if fact == COMMAND and node.kind != "assignment":
                        got = STARTS  # a function that refers to a Snakemake command runs it
                    elif fact == STARTS and node.kind == "assignment":
                        got = COMMAND
                    if got not in node.facts:
                        node.facts[got] = (label, target, fact)
                        changed = True
    return nodes


def _why(nodes: dict, node: Node, fact: str) -> str:
    """The chain that gives a definition a fact: `fixture trained_demo -> _train_demo -> snakemake -> ...`."""
    chain = []
    while node is not None and len(chain) < 12:
        why, target, fact = node.facts[fact]
        chain.append(why)
        node = nodes.get(target)
    return " -> ".join(chain)


def _pinned_modules() -> set:
    """Top-level import names of the distributions requirements.lock pins."""
    pins = set()
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==", line.strip())
        if m:
            pins.add(re.sub(r"[-_.]+", "-", m.group(1)).lower())
    return {
        module
        for module, dists in packages_distributions().items()
        if any(re.sub(r"[-_.]+", "-", d).lower() in pins for d in dists)
    }


def violations(files: list, helpers_dir: Path = TESTS) -> list:
    """One line per way a test's marks break the rule, for the test modules ``files`` (read with the
    helper modules of ``helpers_dir``: conftest.py and the other .py files there but test_*.py)."""
    helpers = {p.stem for p in helpers_dir.glob("*.py") if not p.name.startswith("test_")}
    modules = {h: parse_module(helpers_dir / f"{h}.py", helpers) for h in sorted(helpers)}
    tests = [parse_module(Path(f), helpers) for f in files]
    modules.update({m.name: m for m in tests})
    for mod in tests:  # autouse fixtures: requested by every test of the module (conftest's: of all)
        for node in mod.defs.values():
            if node.kind == "function" and node.name.startswith("test"):
                node.fixtures.update(mod.autouse + modules["conftest"].autouse)
    nodes = analyse(modules)
    pinned = _pinned_modules()
    out = []
    for mod in tests:
        where = mod.path.name
        for n in mod.nodes:
            if isinstance(n, ast.ClassDef) and n.name.startswith("Test"):
                out.append(f"{where}::{n.name}: a test class (this check reads module-level test functions only)")
            if isinstance(n, ast.Call) and _call_name(n.func) == "param":
                marks = [k for k in n.keywords if k.arg == "marks"]
                if any(re.search(r"\b(workflow|slurm|slow)\b", ast.unparse(k.value)) for k in marks):
                    out.append(f"{where}:{n.lineno}: a tier mark on a pytest.param (not read here: mark the test)")
            if isinstance(n, ast.Call) and _call_name(n.func) == "importorskip" and n.args:
                arg = n.args[0]
                top = arg.value.split(".")[0] if isinstance(arg, ast.Constant) else None
                if top in pinned:
                    out.append(f"{where}:{n.lineno}: importorskip({arg.value!r}): {top} is pinned, import it")
        for node in mod.defs.values():
            if node.kind != "function" or not node.name.startswith("test"):
                continue
            marks = {m: line for m, line in mod.marks} | {
                m: line for m, line, _ in _marks(node.tree.decorator_list, mod.lines)
            }
            facts, test = node.facts, f"{where}::{node.name}"
            holds_workflow = STARTS in facts or CLUSTER in facts
            if holds_workflow and WORKFLOW not in marks:
                fact = STARTS if STARTS in facts else CLUSTER
                out.append(f"{test}: {fact} ({_why(nodes, node, fact)}) but is not marked workflow")
            if WORKFLOW in marks and not holds_workflow:
                out.append(f"{test}: marked workflow but starts no Snakemake and needs no SLURM")
            if CLUSTER in facts and SLURM not in marks:
                out.append(f"{test}: needs SLURM ({_why(nodes, node, CLUSTER)}) but is not marked slurm")
            if SLURM in marks and CLUSTER not in facts:
                out.append(f"{test}: marked slurm but needs no SLURM cluster")
            if SLOW in marks and WORKFLOW in marks:
                out.append(f"{test}: marked both slow and workflow (workflow alone: it leaves `make test` already)")
            if MODEL in facts and not holds_workflow and SLOW not in marks:
                out.append(f"{test}: builds a big model ({_why(nodes, node, MODEL)}) but is not marked slow")
            if SLOW in marks and MODEL not in facts and not MEASURED_TIME.search(marks[SLOW]):
                out.append(f"{test}: marked slow with no big model and no measured time in a comment on the mark")
    return sorted(out)


def test_every_test_is_marked_for_what_it_holds():
    found = violations(sorted(TESTS.glob("test_*.py")))
    assert found == [], "\n".join(found)


MIS_MARKED = """
import subprocess
import sys

import pytest

from conftest import SNAKEMAKE, snakemake
from mergelab.embedded.demo import build_demo_models

SCRIPT = "scripts/local_slurm.sh"


def _dry_run(wd):
    return snakemake(wd, None, "-n")


@pytest.fixture()
def campaign(tmp_path):
    _dry_run(tmp_path)
    return tmp_path


def test_dry_run_unmarked(tmp_path):
    snakemake(tmp_path, None, "-n")


def test_lint_unmarked(tmp_path):
    subprocess.run(SNAKEMAKE + ["--lint"], check=True)


def test_helper_unmarked(tmp_path):
    _dry_run(tmp_path)


def test_fixture_unmarked(campaign):
    assert campaign


def test_trained_demo_only_slow_is_wrong(trained_demo):
    assert trained_demo


@pytest.mark.workflow
@pytest.mark.slow  # ~200 s on 2 cores
def test_slow_and_workflow(tmp_path):
    snakemake(tmp_path, None)


def test_gpu_check_unmarked(tmp_path):
    subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu"], check=True)


def test_bare_command_unmarked(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-n"]
    subprocess.run(cmd, check=True)


@pytest.mark.workflow
def test_pure_unit_marked_workflow():
    assert 1 + 1 == 2


@pytest.mark.workflow
def test_big_model_marked_workflow(tmp_path):
    build_demo_models({"base": tmp_path}, size="bench")


def test_trained_model_unmarked(tmp_path):
    build_demo_models({"base": tmp_path})


@pytest.mark.slow
def test_slow_without_a_reason():
    assert True


@pytest.mark.workflow
def test_cluster_without_slurm_mark():
    subprocess.run([SCRIPT, "status"])


@pytest.mark.workflow
@pytest.mark.slurm
def test_slurm_mark_without_cluster(tmp_path):
    snakemake(tmp_path, None, "-n")


registry = pytest.importorskip("mergekit.merge_methods.registry")


@pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_param_marked(n):
    assert n
"""

WELL_MARKED = """
import subprocess
import sys

import pytest

from conftest import SNAKEMAKE, snakemake
from mergelab.embedded.demo import build_demo_models

SCRIPT = "scripts/local_slurm.sh"


@pytest.mark.workflow
def test_dry_run(tmp_path):
    snakemake(tmp_path, None, "-n")


@pytest.mark.workflow
def test_lint(tmp_path):
    subprocess.run(SNAKEMAKE + ["--lint"], check=True)


@pytest.mark.workflow
def test_trained(trained_demo):
    assert trained_demo


@pytest.mark.slow
def test_big_model(tmp_path):
    build_demo_models({"base": tmp_path}, size="bench")


@pytest.mark.slow  # many probes: ~12 s on 2 cores
def test_timed():
    assert True


@pytest.mark.workflow
@pytest.mark.slurm
def test_cluster():
    subprocess.run([SCRIPT, "status"])


def test_tiny(tmp_path, tiny_models):
    build_demo_models({"base": tmp_path}, size="tiny")
    snakemake = "/x/.venv/bin/snakemake"  # a command line as data, not a run
    assert snakemake.endswith("snakemake")
    optional = pytest.importorskip("not_a_pinned_package")
    assert optional
"""


def test_the_rule_catches_mis_marked_tests(tmp_path):
    """Each way MIS_MARKED's tests break the rule is found once, with what the test does and how."""
    bad = tmp_path / "test_example.py"
    bad.write_text(MIS_MARKED)
    found = violations([bad])
    workflow, command = "but is not marked workflow", "snakemake -> SNAKEMAKE -> names snakemake"
    expected = [
        ("test_dry_run_unmarked", f"starts Snakemake ({command}) {workflow}"),
        ("test_lint_unmarked", f"starts Snakemake (SNAKEMAKE -> names snakemake) {workflow}"),
        ("test_helper_unmarked", f"starts Snakemake (_dry_run -> {command}) {workflow}"),
        ("test_fixture_unmarked", f"starts Snakemake (fixture campaign -> _dry_run -> {command}) {workflow}"),
        (
            "test_trained_demo_only_slow_is_wrong",
            f"starts Snakemake (fixture trained_demo -> _train_demo -> {command})",
        ),
        ("test_gpu_check_unmarked", f"starts Snakemake (runs gpu_check.py, which starts Snakemake) {workflow}"),
        ("test_bare_command_unmarked", f"starts Snakemake (starts a process naming snakemake) {workflow}"),
        ("test_slow_and_workflow", "marked both slow and workflow"),
        ("test_pure_unit_marked_workflow", "marked workflow but starts no Snakemake and needs no SLURM"),
        ("test_big_model_marked_workflow", "marked workflow but starts no Snakemake and needs no SLURM"),
        (
            "test_big_model_marked_workflow",
            "builds a big model (build_demo_models(size='bench')) but is not marked slow",
        ),
        ("test_trained_model_unmarked", "builds a big model (build_demo_models(size='demo')) but is not marked slow"),
        ("test_slow_without_a_reason", "marked slow with no big model and no measured time in a comment on the mark"),
        (
            "test_cluster_without_slurm_mark",
            "needs SLURM (SCRIPT -> names the local SLURM cluster's script) but is not marked slurm",
        ),
        ("test_slurm_mark_without_cluster", "marked slurm but needs no SLURM cluster"),
    ]
    for test, message in expected:
        assert sum(line.startswith(f"test_example.py::{test}: {message}") for line in found) == 1, (test, found)
    pinned = "importorskip('mergekit.merge_methods.registry'): mergekit is pinned, import it"
    assert sum(line.endswith(pinned) for line in found) == 1, found
    assert sum(line.endswith("a tier mark on a pytest.param (not read here: mark the test)") for line in found) == 1
    assert len(found) == len(expected) + 2, "\n".join(found)  # nothing else


def test_a_suite_marked_as_it_holds_passes(tmp_path):
    good = tmp_path / "test_example.py"
    good.write_text(WELL_MARKED)
    assert violations([good]) == []
