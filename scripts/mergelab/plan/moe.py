"""Method moe: the recipe's models become the experts of a mixture over its base (mergekit-moe).

One MoE merge per gate mode x experts per token (x seed for the random gate
modes); its id is ``<recipe>_moe_<gate mode>_e<k>[_s<seed>]``.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional

from mergelab.plan.errors import did_you_mean
from mergelab.plan.models import MergeSpec

MOE_GATE_MODES = ("hidden", "cheap_embed", "random", "uniform_random")
# moe.architecture -> the prefix of mergekit-moe's output architecture name it selects
MOE_ARCHITECTURES = {"mixtral": "mixtral", "deepseek": "deepseek", "qwen": "qwen moe", "qwen3": "qwen3"}


def _sweep(recipe, key: str, value) -> list:
    vals = value if isinstance(value, list) else [value]
    if not vals:
        recipe.fail(key, "empty sweep: give at least one value")
    if len(set(vals)) != len(vals):
        recipe.fail(key, "the sweep lists a value twice")
    return vals


def expand_moe(recipe, names: List[str], base: Optional[str]) -> List[MergeSpec]:
    """One MoE merge per gate mode x experts per token (x seed for random gates):
    the recipe's models are the experts, over its base."""
    s, r = recipe.r["moe"], recipe.r
    if base is None:
        recipe.fail(
            "base", f"moe builds the experts into a copy of a base model: set base to one of {', '.join(recipe.models)}"
        )
    if len(names) < 2:
        recipe.fail(
            "models",
            f"moe needs at least 2 experts (the recipe's models); this recipe gives {len(names)}: {', '.join(names)}",
        )
    gates = _sweep(recipe, "moe.gate_mode", s["gate_mode"])
    for g in gates:
        if g not in MOE_GATE_MODES:
            recipe.fail(
                "moe.gate_mode",
                f"unknown gate mode {g!r}{did_you_mean(g, MOE_GATE_MODES)} (gate modes: {', '.join(MOE_GATE_MODES)})",
            )
    ks = _sweep(recipe, "moe.experts_per_token", s["experts_per_token"])
    for k in ks:
        if k > len(names):
            recipe.fail("moe.experts_per_token", f"{k} experts per token, but the recipe has {len(names)} experts")
    prompts = s["prompts"]
    for m in prompts:
        if m not in names:
            recipe.fail(f"moe.prompts.{m}", f"{m!r} is not an expert of this recipe (experts: {', '.join(names)})")
    routed = [g for g in gates if g in ("hidden", "cheap_embed")]
    if routed:
        for n in names:
            if not (prompts.get(n) or {}).get("positive"):
                recipe.fail(
                    f"moe.prompts.{n}",
                    f"gate mode {routed[0]} routes by prompts: give positive prompts for expert {n!r}",
                )
        sets = {(tuple(prompts[n]["positive"]), tuple(prompts[n].get("negative") or [])) for n in names}
        if len(sets) == 1:
            recipe.fail("moe.prompts", "every expert has the same prompts: the routers could not tell them apart")
    shared = []
    for i, e in enumerate(s["shared_experts"]):
        ref = recipe.model_ref(f"moe.shared_experts[{i}].model", e["model"])
        shared.append((ref, e))
    arch = s["architecture"]
    with_prompts = [bool(e.get("positive")) for _, e in shared]
    if shared and len(set(with_prompts)) > 1:
        recipe.fail("moe.shared_experts", "give prompts to every shared expert or to none")
    if shared and arch == "mixtral":
        recipe.fail("moe.shared_experts", "the mixtral architecture has no shared experts; use qwen or deepseek")
    if arch == "qwen":
        if len(shared) != 1:
            recipe.fail("moe.shared_experts", f"architecture qwen needs exactly one shared expert (got {len(shared)})")
        if any(g not in ("random", "uniform_random") for g in gates) and not with_prompts[0]:
            recipe.fail("moe.shared_experts[0].positive", "architecture qwen gates its shared expert: give it prompts")
    if arch == "deepseek" and (len(shared) > 1 or any(with_prompts)):
        recipe.fail("moe.shared_experts", "architecture deepseek takes at most one shared expert, without prompts")

    def expert(name, e):
        out = {
            "source_model": recipe.models[name].mergekit_ref,
            "positive_prompts": list(e.get("positive") or []),
            "negative_prompts": list(e.get("negative") or []),
        }
        if e.get("residual_scale") is not None:
            out["residual_scale"] = e["residual_scale"]
        return out

    inputs = [base] + list(names) + [m for m, _ in shared if m not in names and m != base]
    swept = tuple(name for name, values in (("gate_mode", gates), ("experts_per_token", ks)) if len(values) > 1)
    out = []
    for gate, k in itertools.product(gates, ks):
        random_gate = gate in ("random", "uniform_random")
        for seed in r["seeds"] if random_gate else r["seeds"][:1]:
            cfg: Dict[str, Any] = {
                "base_model": recipe.models[base].mergekit_ref,
                "gate_mode": gate,
                "dtype": r["dtype"],
                "experts_per_token": k,
                "experts": [expert(n, prompts.get(n) or {}) for n in names],
            }
            if shared:
                cfg["shared_experts"] = [expert(m, e) for m, e in shared]
            if arch:
                cfg["architecture"] = MOE_ARCHITECTURES[arch]
            params = {"gate_mode": gate, "experts_per_token": k}
            if arch:
                params["architecture"] = arch
            mid = f"{recipe.name}_moe_{gate}_e{k}" + (f"_s{seed}" if random_gate else "")
            out.append(
                MergeSpec(
                    mid,
                    recipe.name,
                    "moe",
                    seed,
                    params,
                    cfg,
                    list(inputs),
                    dtype=r["dtype"],
                    gpus=r.get("gpus"),
                    resources=r.get("resources"),
                    parents=list(names),
                    base=base,
                    swept=swept,
                )
            )
    return out
