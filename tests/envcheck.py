"""Does a conda env provide what a rule's script imports? (tests/test_envs.py)

Static: parse the rules of workflow/rules/*.smk, walk the script's imports and, through the
mergelab functions it uses, the mergelab code it can run; map each third-party module to its
distribution and look for it in the env's pip pins and what they require.

Granularity in the local package (mergelab): importing a module runs its module-level code (class
bodies included; not an `if __name__ == "__main__":` block) and each package __init__.py along the
dotted path, so their imports count; an import inside a top-level function counts when the function
is reachable: named by an import (`from mergelab.x import f`), by an attribute (`x.f`, x a mergelab
module) or by a name in reachable code of its own module. The script's imports all count, wherever.
An import in the body of a `try:` with an `except ImportError` (or ModuleNotFoundError) handler
is an optional dependency and does not count; a bare `except:` or `except Exception:` does not
make one optional. Imports under `if TYPE_CHECKING:` do not count. Not seen: imports by name
(importlib, __import__), functions reached through getattr.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
RULES_DIR = REPO / "workflow" / "rules"
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}
MODULE = "<module>"  # the unit of a module's module-level code


def norm(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503: lowercase, runs of -_. as -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# ---- rules


@dataclass(frozen=True)
class Rule:
    name: str
    smk: Path
    env: Path | None
    script: Path | None


_HEADER = re.compile(r"^(\s*)(?:rule|checkpoint)(?:\s+(\w+))?\s*:\s*(?:#.*)?$")
_USE = re.compile(r"^(\s*)use\s+rule\s+(\w+)\s+as\s+(\w+)(\s+with\s*:)?\s*(?:#.*)?$")
_DIRECTIVE = re.compile(r"^(\s+)(\w+)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _directives(block: list[str]) -> dict[str, str]:
    """The directives of a rule body (its first indentation level) -> their text."""
    out: dict[str, str] = {}
    lines = [ln for ln in block if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return out
    level = _indent(lines[0])
    key = None
    for ln in lines:
        m = _DIRECTIVE.match(ln)
        if m and len(m.group(1)) == level:
            key = m.group(2)
            out[key] = m.group(3).strip()
        elif key is not None and _indent(ln) > level:
            out[key] = (out[key] + " " + ln.strip()).strip()
    return out


def _path_value(text: str, smk: Path, rule: str, directive: str) -> Path:
    try:
        value = ast.literal_eval(text.strip().rstrip(","))
    except (ValueError, SyntaxError):
        raise ValueError(f"{rel(smk)}: rule {rule}: {directive}: {text!r} is not a string literal") from None
    return (smk.parent / value).resolve()


def parse_rules(rules_dir: Path = RULES_DIR) -> dict[str, Rule]:
    """Every rule of rules_dir/*.smk with its conda env and script (absolute paths, or None);
    `use rule A as B with:` gets A's, unless its `with:` block names its own."""
    rules: dict[str, Rule] = {}
    uses = []  # (smk, base, name, directives)
    for smk in sorted(rules_dir.glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            header, use = _HEADER.match(line), _USE.match(line)
            if not header and not use:
                if re.match(r"^\s*use\s+rule\b", line):
                    raise ValueError(f"{rel(smk)}:{i + 1}: a `use rule` this check cannot read: {line.strip()}")
                continue
            indent = len((header or use).group(1))
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and not nxt.lstrip().startswith("#") and _indent(nxt) <= indent:
                    break
                block.append(nxt)
            directives = _directives(block)
            if use:
                uses.append((smk, use.group(2), use.group(3), directives))
                continue
            name = header.group(2) or f"<anonymous rule, {rel(smk)}:{i + 1}>"
            env, script = directives.get("conda"), directives.get("script")
            rules[name] = Rule(
                name,
                smk,
                _path_value(env, smk, name, "conda") if env else None,
                _path_value(script, smk, name, "script") if script else None,
            )
    for smk, base, name, directives in uses:
        if base not in rules:
            raise ValueError(f"{rel(smk)}: use rule {base} as {name}: no rule {base} in {rel(rules_dir)}")
        env, script = directives.get("conda"), directives.get("script")
        rules[name] = Rule(
            name,
            smk,
            _path_value(env, smk, name, "conda") if env else rules[base].env,
            _path_value(script, smk, name, "script") if script else rules[base].script,
        )
    return rules


# ---- imports


@dataclass(frozen=True)
class Import:
    module: str  # absolute, dotted
    names: tuple  # what `from module import ...` names; () for `import module`
    asname: str | None  # for `import module` / `import module as m`: the name it binds
    file: Path
    line: int


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for t in types:
        name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
        if name in IMPORT_ERRORS:
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`: False when the code runs."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_in(nodes: list[ast.AST], path: Path, package: str | None) -> list[Import]:
    """The imports in nodes (at any depth) but the optional ones; relative ones resolved
    against package (the dotted package of the file, None for a script)."""
    out: list[Import] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            catches = any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, optional or catches)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the body never runs
                visit(child, optional)
            return
        if not optional and isinstance(node, ast.Import):
            out.extend(Import(a.name, (), a.asname or a.name.split(".")[0], path, node.lineno) for a in node.names)
        elif not optional and isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                if node.level > len(parts):
                    raise ValueError(f"{rel(path)}:{node.lineno}: relative import beyond the top-level package")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{name}" if name else base
            out.append(Import(name, tuple((a.name, a.asname or a.name) for a in node.names), None, path, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    for node in nodes:
        visit(node, False)
    return out


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def local_packages(root: Path = SCRIPTS) -> set[str]:
    """Top-level packages of the scripts folder (mergelab): on the jobs' sys.path, not distributions."""
    return {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}


@dataclass
class Module:
    """A parsed local module: its top-level functions, and the rest (run on import)."""

    name: str
    path: Path
    functions: dict = field(default_factory=dict)  # name -> ast.FunctionDef
    module_level: list = field(default_factory=list)  # statements and expressions run on import

    @property
    def package(self) -> str:
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _is_main_guard(stmt: ast.stmt) -> bool:
    """`if __name__ == "__main__":`"""
    t = stmt.test if isinstance(stmt, ast.If) else None
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.left, ast.Name)
        and t.left.id == "__name__"
        and len(t.ops) == 1
        and isinstance(t.ops[0], ast.Eq)
        and isinstance(t.comparators[0], ast.Constant)
        and t.comparators[0].value == "__main__"
    )


def parse_module(name: str, path: Path) -> Module:
    mod = Module(name, path)
    for stmt in _parse(path).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mod.functions[stmt.name] = stmt
            args = stmt.args
            mod.module_level += [*stmt.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d]]
        elif _is_main_guard(stmt):
            mod.module_level += stmt.orelse  # imported, never __main__
        else:
            mod.module_level.append(stmt)  # classes whole: their bodies run on import, methods conservatively
    return mod


def _dotted(node: ast.AST) -> list[str] | None:
    """a.b.c -> ['a', 'b', 'c'] for an attribute chain on a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _aliases(path: Path, package: str | None, local: set, module) -> dict[str, str]:
    """Names bound to local modules anywhere in a file -> the module (for attribute chains on them)."""
    aliases: dict[str, str] = {}
    for imp in imports_in([_parse(path)], path, package):
        top = imp.module.split(".")[0]
        if top not in local:
            continue
        if imp.asname:  # `import a.b` binds a; `import a.b as m` binds m to a.b
            aliases[imp.asname] = top if imp.asname == top else imp.module
        for name, asname in imp.names:
            if module(f"{imp.module}.{name}") is not None:
                aliases[asname] = f"{imp.module}.{name}"
    return aliases


def required_imports(script: Path, root: Path = SCRIPTS) -> tuple[dict[str, list[tuple[Import, str]]], list[str]]:
    """Third-party top-level module -> [(the import, how the script reaches it)], over the whole
    script and the local code it can run; and the local imports that resolve to no file."""
    local = local_packages(root)
    modules: dict[str, Module | None] = {}

    def module(name: str) -> Module | None:
        if name not in modules:
            path = _module_file(name, root)
            modules[name] = parse_module(name, path) if path else None
        return modules[name]

    found: dict[str, list[tuple[Import, str]]] = {}
    problems: list[str] = []
    seen: dict[tuple, str] = {}  # (module, function or MODULE) -> the chain from the script
    aliases_of: dict[Path, dict[str, str]] = {}
    queue: list[tuple[str | None, str, list, str]] = [(None, MODULE, _parse(script).body, rel(script))]

    def reach(mod_name: str, unit: str, chain: str) -> None:
        mod = module(mod_name)
        if mod is None or (unit != MODULE and unit not in mod.functions) or (mod_name, unit) in seen:
            return
        label = mod_name if unit == MODULE else f"{mod_name}.{unit}"
        seen[(mod_name, unit)] = f"{chain} -> {label}"
        nodes = mod.module_level if unit == MODULE else [mod.functions[unit]]
        queue.append((mod_name, unit, nodes, seen[(mod_name, unit)]))

    def reach_module(name: str, chain: str, imp: Import) -> bool:
        """Import a local module: each package along the dotted path runs, then the module."""
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            if module(".".join(parts[:k])) is None:
                problems.append(
                    f"{'.'.join(parts[:k])}, imported by {rel(imp.file)}:{imp.line}, has no file under {rel(root)}"
                )
                return False
            reach(".".join(parts[:k]), MODULE, chain)
        return True

    while queue:
        mod_name, _, nodes, chain = queue.pop(0)
        mod = modules.get(mod_name) if mod_name else None
        path = mod.path if mod else script
        imports = imports_in(nodes, path, mod.package if mod else None)
        if path not in aliases_of:
            aliases_of[path] = _aliases(path, mod.package if mod else None, local, module)
        aliases = aliases_of[path]
        for imp in imports:
            top = imp.module.split(".")[0]
            if top in local:
                if not reach_module(imp.module, chain, imp):
                    continue
                for name, _ in imp.names:
                    if name == "*":
                        for fn in module(imp.module).functions:
                            reach(imp.module, fn, chain)
                    elif module(f"{imp.module}.{name}") is not None:
                        reach(f"{imp.module}.{name}", MODULE, chain)
                    else:
                        reach(imp.module, name, chain)  # a function; else a class or a constant: module-level
            elif top and top != "__future__" and top not in sys.stdlib_module_names:
                found.setdefault(top, []).append((imp, chain))
        for node in (n for root_node in nodes for n in ast.walk(root_node)):
            if isinstance(node, ast.Name) and mod is not None and node.id in mod.functions:
                reach(mod_name, node.id, chain)
            elif isinstance(node, ast.Attribute) and (parts := _dotted(node)) and parts[0] in aliases:
                target = aliases[parts[0]]
                for attr in parts[1:]:
                    if module(f"{target}.{attr}") is not None:
                        target = f"{target}.{attr}"
                        reach(target, MODULE, chain)
                    else:
                        reach(target, attr, chain)
                        break
    return found, problems


# ---- envs


@cache
def module_distributions() -> dict[str, tuple[str, ...]]:
    """Top-level module -> the installed distributions that provide it (normalised names)."""
    return {mod: tuple(norm(d) for d in dists) for mod, dists in md.packages_distributions().items()}


def pip_specs(env: Path) -> list[str]:
    deps = yaml.safe_load(env.read_text())["dependencies"]
    return [s for d in deps if isinstance(d, dict) for s in d.get("pip", [])]


@cache
def env_provides(env: Path) -> tuple[frozenset, tuple]:
    """What pip installs for the env's pip pins: the pins (with their extras) and the closure of
    their Requires-Dist in the installed distributions, markers evaluated for this interpreter with
    `extra` set to each extra asked of that distribution and ''. And what stopped the check."""
    specs = [Requirement(s) for s in pip_specs(env)]
    problems = []
    queue = []
    for req in specs:
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        queue.append((req.name, set(req.extras)))
        pinned = [s.version for s in req.specifier if s.operator == "=="]
        try:
            installed = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"pins {req}, which is not installed in the venv: what it requires is unknown")
            continue
        if pinned and Version(installed).public != Version(pinned[0]).public:
            problems.append(
                f"pins {req} but the venv has {req.name} {installed}: what it requires is read from the wrong version"
            )
    marker_env = default_environment()
    asked: dict[str, set] = {}  # distribution -> the extras expanded so far ('' for its plain requirements)
    while queue:
        name, extras = queue.pop(0)
        new = (extras | {""}) - asked.get(norm(name), set())
        if not new:
            continue
        asked.setdefault(norm(name), set()).update(new)
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue  # pip would install it; absent here, so what it requires in turn is unread
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**marker_env, "extra": e}) for e in new):
                queue.append((req.name, set(req.extras)))
    return frozenset(asked), tuple(problems)


def check_rule(rule: str, env: Path, script: Path, root: Path = SCRIPTS) -> list[str]:
    """Why the env of `rule` cannot run its script: a line per third-party module it lacks."""
    provided, problems = env_provides(env)
    head = f"{rule} ({rel(env)})"
    failures = [f"{head}: {p}" for p in problems]
    found, missing_local = required_imports(script, root)
    failures += [f"{head}: {p}" for p in missing_local]
    dists = module_distributions()
    for top, imports in sorted(found.items()):
        where = ", ".join(
            f"{rel(i.file)}:{i.line}" + (f" (via {chain})" if i.file != script else "") for i, chain in imports
        )
        if top not in dists:
            failures.append(
                f"{head}: {top}, imported by {where}, belongs to no installed distribution "
                "(missing from the venv, or a misspelt module)"
            )
        elif not provided & set(dists[top]):
            failures.append(
                f"{head}: {top} (distribution {' or '.join(dists[top])}), imported by {where}, "
                "is not provided by the env"
            )
    return failures
