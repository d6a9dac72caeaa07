"""Build the tables and the figures of a campaign from its result files.

Used by the `organize` and `plot` rules, and - when a run fails - by the
workflow's onerror handler, which builds them from the results that exist
(`python -m mergelab.outputs SPEC.json`), so a campaign with a failed
evaluation still gets its tables and figures, the gap named in them and in
logs/organize/partial.log.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict

from mergelab.jobs import atomic_file

log = logging.getLogger("mergelab.outputs")


def read_manifest(path: str):
    if not path or not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def parquet_safe(frame):
    """Columns holding values of several types (batch size 8 or "auto") as strings, for Arrow."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col] if v is not None and v == v}
            if len(kinds) > 1:
                out[col] = out[col].map(lambda v: None if v is None or v != v else str(v))
    return out


def build_tables(ctx: Dict[str, Any], out: Dict[str, str]) -> None:
    import pandas as pd

    from mergelab import organize as org

    harness = org.harness_table(ctx["files"]["harness"], ctx)
    holmes = org.holmes_table(ctx["files"]["holmes"], read_manifest(ctx["files"].get("holmes_manifest")), ctx)
    comp = org.competence_table(holmes, ctx) if not holmes.empty else pd.DataFrame(columns=org.COMPETENCE_COLUMNS)
    comparisons = org.merge_comparisons(harness, comp, ctx)
    for key, frame in (("harness", harness), ("holmes", holmes), ("competences", comp),
                       ("comparisons", comparisons)):
        with atomic_file(out[key], newline="") as fh:
            frame.to_csv(fh, index=False)
    tmp = Path(out["harness_parquet"]).with_name(".harness.parquet.partial")
    parquet_safe(harness).to_parquet(tmp, index=False)
    tmp.replace(out["harness_parquet"])
    with atomic_file(out["leaderboard"]) as fh:
        fh.write(org.leaderboard(harness, comp, comparisons, ctx))
    with atomic_file(out["provenance"]) as fh:
        json.dump(org.provenance(ctx), fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    missing = int((harness["status"] == "missing").sum() + (holmes["status"] == "missing").sum())
    log.info("tables written; %d missing value(s)%s", missing, " (see the warnings above)" if missing else "")


def build_plots(ctx: Dict[str, Any], tables: Dict[str, str], stems: Dict[str, str]) -> None:
    import pandas as pd

    from mergelab import plots

    def load(key):
        path = Path(tables[key])
        return pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()

    harness, holmes, comp, comparisons = (load(k) for k in ("harness", "holmes", "competences", "comparisons"))
    sweeps = plots.swept(ctx)
    for key, stem in stems.items():
        stem = Path(stem)
        if key.startswith("harness_"):
            plots.harness_task(harness, ctx, key[len("harness_"):], stem)
        elif key == "holmes_competences":
            plots.holmes_competences(comp, ctx, stem)
        elif key in ("kendall_competences", "kendall_datasets"):
            plots.kendall(harness, holmes, comp, stem, level=key.split("_")[1].rstrip("s"))
        elif key == "merge_vs_parents":
            plots.merge_vs_parents(comparisons, stem)
        elif key == "merge_outcomes":
            plots.outcomes(comparisons, stem)
        elif key.startswith("sweep_"):
            recipe = key[len("sweep_"):]
            plots.sweep(harness, comp, ctx, recipe, sweeps[recipe], stem)
        else:  # pragma: no cover - the Snakefile and this list change together
            raise ValueError(f"unknown figure {key!r}")
        log.info("figure %s", stem)


def main(spec_path: str) -> None:
    """The onerror path: tables and figures from whatever results exist."""
    from mergelab.jobs import job_log

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    with job_log(spec["log"]):
        log.info("a run failed: building tables and figures from the results that exist")
        build_tables(spec["context"], spec["tables"])
        build_plots(spec["context"], spec["tables"], spec["stems"])


if __name__ == "__main__":
    main(sys.argv[1])
