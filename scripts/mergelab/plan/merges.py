"""The config's `merges:` section: every recipe expanded (mergelab.plan.recipes), by merge id.

Recipes may read each other's merges in any order: each is expanded once the models it names
are known; a name that never becomes known is unknown, or part of a cycle of recipes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from mergelab.plan.errors import ConfigError
from mergelab.plan.models import MergeSpec, ModelSpec, merge_model_spec
from mergelab.plan.recipes import Pending, Recipe


def expand_recipes(
    recipes: List[dict], given: List[dict], models: Dict[str, ModelSpec], source: str, workdir: Path
) -> Dict[str, MergeSpec]:
    """Every merge of the `merges:` section by id, in config order. ``given``: the recipes as the
    user wrote them (before the schema's defaults).

    A recipe may read the merges of other recipes (by merge id, or by the name of a recipe
    that makes one merge), in any order: recipes are expanded as their inputs become known;
    a name that never does is unknown, or part of a cycle."""
    seen_names: Dict[str, int] = {}
    for i, r in enumerate(recipes):
        name = r["name"]
        if name in seen_names:
            raise ConfigError(
                f"{source}: merges[{i}].name: duplicate merge name {name!r} (also merges[{seen_names[name]}])"
            )
        if name in models:
            raise ConfigError(f"{source}: merges[{i}].name: {name!r} is also a model name; names must be unique")
        seen_names[name] = i
    known: Dict[str, ModelSpec] = dict(models)  # what a recipe may name: parents, merges, one-merge recipes
    recipe_ids: Dict[str, List[str]] = {}
    expanded: Dict[int, List[MergeSpec]] = {}
    pending = list(range(len(recipes)))
    while pending:
        blocked: Dict[int, Pending] = {}
        for i in pending:
            try:
                specs = Recipe(i, recipes[i], known, source, workdir, given[i], recipe_ids).expand()
            except Pending as p:
                blocked[i] = p
                continue
            for spec in specs:
                if spec.id in known or any(spec.id in ids for ids in recipe_ids.values()):
                    raise ConfigError(f"{source}: merges[{i}]: merge id {spec.id!r} appears twice")
                known[spec.id] = merge_model_spec(spec, workdir)
            recipe_ids[recipes[i]["name"]] = [spec.id for spec in specs]
            if len(specs) == 1 and recipes[i]["name"] not in known:
                known[recipes[i]["name"]] = known[specs[0].id]
            expanded[i] = specs
        if len(blocked) == len(pending):
            raise _unresolved(blocked, recipes, source)
        pending = list(blocked)
    return {spec.id: spec for i in sorted(expanded) for spec in expanded[i]}


def _unresolved(blocked: Dict[int, "Pending"], recipes: List[dict], source: str) -> ConfigError:
    """Why no blocked recipe can be expanded: a name nothing makes (unknown), or recipes that
    read each other's merges (a cycle)."""

    def maker(name: str) -> Optional[int]:  # the blocked recipe whose merges ``name`` would be
        for j in blocked:
            rn = recipes[j]["name"]
            if name == rn or name.startswith((rn + "_", rn + "-")):
                return j
        return None

    roots = [i for i, p in blocked.items() if maker(p.name) is None]
    if roots:
        return blocked[roots[0]]
    start = min(blocked)
    trail = [start]
    while True:
        nxt = maker(blocked[trail[-1]].name)
        if nxt in trail:
            cycle = trail[trail.index(nxt) :] + [nxt]
            break
        trail.append(nxt)
    first = blocked[cycle[0]]
    chain = " → ".join(recipes[j]["name"] for j in cycle)
    return ConfigError(
        f"{source}: merges[{cycle[0]}].{first.key}: {first.name!r} is made from this recipe's own merges: "
        f"a cycle of recipes {chain}"
    )
