"""Check experiment config files as the workflow would, without Snakemake and without running anything:

    python scripts/check_config.py my.yaml [more.yaml ...]     (or: make check CONFIG=my.yaml)

Several files are merged in order, as `--configfile a.yaml b.yaml` merges them; with
none, the embedded default (config/experiment.yaml). Run it from the working directory
the campaign will use (model paths are relative to it), e.g. on a login node before
submitting.

Snakemake reads every --configfile before the workflow starts, and for a file that is
not YAML it says only "Config file is not valid JSON or YAML" (for a file that is not
there, it prints a traceback). This names the file, line and column, and then
checks everything the workflow checks while it builds the DAG: the schema, the
models (their checkpoints' headers), the recipes, the tasks. Exit status 1 on a
problem, with one line naming it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mergelab.plan.errors import ConfigError  # noqa: E402
from mergelab.plan.experiment import load_experiment  # noqa: E402
from mergelab.plan.load import DEFAULT_CONFIG, read_config_file  # noqa: E402


def _merged(into: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    """Snakemake's merge of config files: mappings key by key, anything else replaced."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merged(into[k], v)
        else:
            into[k] = v
    return into


def check(files: List[str], workdir: os.PathLike) -> str:
    """One line on what the config plans; ConfigError (naming file and key) on a problem."""
    cfg: Dict[str, Any] = {}
    for f in files:
        data = read_config_file(f)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{f}: the config must be a mapping of keys (models, merges, ...)")
        _merged(cfg, data or {})
    source = " + ".join(files)
    exp = load_experiment(cfg, source, workdir=workdir)
    jobs = len(exp.harness.models) * len(exp.harness.tasks) + len(exp.holmes.models)
    return (
        f"{source}: ok: {len(exp.models)} models, {len(exp.merges)} merges, "
        f"{jobs} evaluation jobs ({len(exp.harness.tasks)} harness tasks, "
        f"Holmes {'on ' + str(len(exp.holmes.models)) + ' models' if exp.holmes.models else 'off'})"
    )


def main(argv: List[str]) -> int:
    try:
        print(check(argv or [DEFAULT_CONFIG], os.getcwd()))
    except ConfigError as e:
        print(f"mergelab: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
