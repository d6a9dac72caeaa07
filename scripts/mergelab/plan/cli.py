"""What the snakemake command line asks of the plan: typed --config values, and rule names
typed where a target was meant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import yaml

from mergelab.plan.rules import RULES

# Rules that make one file per model (wildcards), and the target that makes them all.
TARGET_OF_RULE = {name: r.target for name, r in RULES.items() if r.target}


def typed_cli_values(node: Any) -> Any:
    """Values of `snakemake --config` with their string leaves read as YAML scalars."""
    if isinstance(node, dict):
        return {k: typed_cli_values(v) for k, v in node.items()}
    if isinstance(node, list):
        return [typed_cli_values(v) for v in node]
    if isinstance(node, str):
        try:
            value = yaml.safe_load(node)
        except yaml.YAMLError:
            return node
        return value if isinstance(value, (bool, int, float, type(None))) else node
    return node


def rule_typed_as_target(argv: Optional[List[str]] = None) -> Optional[str]:
    """One line for the user when the snakemake command line names a per-model rule as a target
    (``snakemake merge``: Snakemake would say "Target rules may not contain wildcards"); else None.
    Only for the snakemake CLI, and only parsed when such a name appears on it."""
    argv = sys.argv if argv is None else argv
    if not argv or "snakemake" not in str(Path(argv[0]).resolve()) or not set(argv[1:]) & set(TARGET_OF_RULE):
        return None
    if "--target-jobs" in argv:  # a job Snakemake started (a cluster job): it names rules as values only
        return None
    from snakemake.cli import get_argument_parser

    try:
        args, _ = get_argument_parser().parse_known_args(argv[1:])
    except SystemExit:  # not snakemake's command line after all
        return None
    for target in args.targets or ():
        if target in TARGET_OF_RULE:
            return (
                f"`{target}` is the rule that makes one file per model; the target that makes them all is "
                f"`{TARGET_OF_RULE[target]}` (snakemake {TARGET_OF_RULE[target].split()[0]})"
            )
    return None
