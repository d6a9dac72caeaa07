"""The tables and figures of a campaign: the code that builds them.

The figures are declared in the plan (mergelab.plan.figures.FIGURES: stem, caption, category,
when a campaign gets them); DRAW here says how each is drawn. Both serve the plot job and the
onerror path, which builds the tables and figures from the results that exist when a job failed
(`python -m mergelab.analysis.outputs SPEC.json`) under results/partial/, where no rule writes, the gaps
named in them and in logs/organize/partial.log.

Light at import: pandas and matplotlib load only when building.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List

from mergelab.analysis import plots
from mergelab.evaluate.holmes_data import read_manifest
from mergelab.plan import paths
from mergelab.plan.holmes_sets import read_probes
from mergelab.plan.jobs import Catalogue, OrganizeJob, PlotJob
from mergelab.runtime.jobs import atomic_file, job_log

log = logging.getLogger("mergelab.outputs")


def subprocess_env(scripts: Path, environ=None) -> Dict[str, str]:
    """The environment for a Python subprocess that imports mergelab from ``scripts``: the
    caller's, with ``scripts`` put first on PYTHONPATH and what was there kept after it (an
    install made with ``pip --target`` or a cluster's module system lives there)."""
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(scripts), env.get("PYTHONPATH"))))
    return env


# How each figure of mergelab.plan.figures.FIGURES is drawn:
# draw(tables, catalogue, stem, **wildcards); tables: key -> DataFrame.
DRAW: Dict[str, Callable[..., None]] = {
    "harness": lambda t, catalogue, stem, task: plots.harness_task(t["harness"], catalogue, task, stem),
    "holmes_competences": lambda t, catalogue, stem: plots.holmes_competences(t["competences"], catalogue, stem),
    "kendall_competences": lambda t, catalogue, stem: plots.kendall(
        t["harness"], t["holmes"], t["competences"], stem, level="competence"
    ),
    "kendall_datasets": lambda t, catalogue, stem: plots.kendall(
        t["harness"], t["holmes"], t["competences"], stem, level="dataset"
    ),
    "merge_vs_parents": lambda t, catalogue, stem: plots.merge_vs_parents(t["comparisons"], stem),
    "merge_outcomes": lambda t, catalogue, stem: plots.outcomes(t["comparisons"], stem),
    "normalised_scores": lambda t, catalogue, stem: plots.normalised_scores(t["normalised"], stem),
    "sweep": lambda t, catalogue, stem, recipe, param: plots.sweep(
        t["harness"], t["competences"], catalogue, recipe, param, stem
    ),
}


# --------------------------------------------------------------------------- building


def parquet_safe(frame):
    """Columns holding values of several types (batch size 8 or "auto") as strings, for Arrow."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col] if v is not None and v == v}
            if len(kinds) > 1:
                out[col] = out[col].map(lambda v: None if v is None or v != v else str(v))
    return out


def build_tables(catalogue: Catalogue, files: Dict[str, Any], out: Dict[str, str]) -> None:
    """Every table of paths.TABLES (keys of ``out``) from the result ``files``."""
    import pandas as pd

    # numpy comes with these (~0.25 s): not at the top, which the DAG build imports
    from mergelab.analysis import compare
    from mergelab.analysis import organize as org
    from mergelab.analysis.leaderboard import leaderboard, leaderboard_table
    from mergelab.analysis.normalised import normalised_scores

    broken = org.broken_models(files.get("checks"))
    if broken:  # the leaderboard and provenance.json give the reasons
        catalogue = replace(catalogue, broken=broken)
        for model, reasons in broken.items():
            log.warning("%s is broken (sanity check): %s", model, "; ".join(reasons))
    harness = org.harness_table(files["harness"], catalogue)
    probes = files.get("holmes_probes")
    mapping = read_probes(Path(probes)) if probes else None
    holmes = org.holmes_table(files["holmes"], read_manifest(files.get("holmes_manifest")), catalogue, mapping)
    org.mark_broken(harness, broken)
    org.mark_broken(holmes, broken)
    comp = org.competence_table(holmes, catalogue) if not holmes.empty else pd.DataFrame(columns=org.COMPETENCE_COLUMNS)
    started = time.perf_counter()
    items = compare.read_items(files.get("harness_items"))
    org.add_intervals(harness, compare.model_intervals(harness, items, catalogue))
    comparisons = compare.merge_comparisons(harness, items, catalogue, holmes)
    s = compare.stats_settings(catalogue)
    log.info(
        "paired statistics: %d comparisons, %d intervals, %d resamples each (correction %s): %.1f s",
        len(comparisons),
        int(harness["ci_low"].notna().sum()),
        s["bootstrap"],
        s["correction"],
        time.perf_counter() - started,
    )
    normalised = normalised_scores(harness, catalogue)
    for key, frame in (
        ("harness", harness),
        ("holmes", holmes),
        ("competences", comp),
        ("comparisons", comparisons),
        ("normalised", normalised),
    ):
        with atomic_file(out[key], newline="") as fh:
            frame.to_csv(fh, index=False)
    tmp = Path(out["harness_parquet"]).with_name(".harness.parquet.partial")
    parquet_safe(harness).to_parquet(tmp, index=False)
    tmp.replace(out["harness_parquet"])
    board = leaderboard_table(harness, comp, comparisons, catalogue, holmes)
    with atomic_file(out["leaderboard"]) as fh:
        fh.write(leaderboard(board, comparisons, catalogue))
    with atomic_file(out["leaderboard_csv"], newline="") as fh:
        board.to_csv(fh, index=False)
    with atomic_file(out["provenance"]) as fh:
        json.dump(org.provenance(catalogue), fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    missing = int(harness["status"].isin(["missing", "partial"]).sum() + (holmes["status"] == "missing").sum())
    log.info("tables written; %d missing value(s)%s", missing, " (see the warnings above)" if missing else "")


def build_plots(catalogue: Catalogue, tables: Dict[str, str], figures: List[Dict[str, Any]]) -> None:
    """Every figure of ``figures`` (see figures()) from the tables at ``tables`` (key -> path)."""
    import pandas as pd

    def load(key):
        path = Path(tables[key])
        return pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()

    frames = {k: load(k) for k in ("harness", "holmes", "competences", "comparisons", "normalised")}
    for f in figures:
        DRAW[f["figure"]](frames, catalogue, Path(f["stem"]), **f["wildcards"])
        log.info("figure %s", f["stem"])


PARTIAL_README = """# Partial results

A run of `{source}` failed ({when}). These tables and figures were built from the
results that existed then; every gap is marked `missing` (see {log}).

Snakemake does not track these files and never takes them for up to date: the
complete tables and figures are in results/tables/ and results/plots/, made by the
organize and plot rules. The next successful organize job removes this folder.
"""


def build_partial(catalogue: Catalogue, files: Dict[str, Any], figures: List[Dict[str, Any]]) -> Dict[str, str]:
    """Tables and figures from the result ``files`` that exist, under results/partial/
    (paths.partial), never where the organize and plot rules write. Returns the tables."""
    import shutil

    shutil.rmtree(paths.PARTIAL, ignore_errors=True)  # an earlier failure's
    tables = {k: paths.partial(v) for k, v in paths.TABLES.items()}
    build_tables(catalogue, files, tables)
    build_plots(catalogue, tables, [{**f, "stem": paths.partial(f["stem"])} for f in figures])
    return tables


def remove_partial() -> None:
    """The complete tables exist: what an earlier failure left in results/partial/ is stale."""
    import shutil

    if Path(paths.PARTIAL).exists():
        shutil.rmtree(paths.PARTIAL)
        log.info("removed %s (left by an earlier failed run)", paths.PARTIAL)


_END_OF_RUN: List[Callable[[bool], None]] = []  # the campaign built in this process (workflow/rules/common.smk)


def register_end_of_run(func: Callable[[bool], None]) -> None:
    """The DAG glue registers what the last lines of a run do (end_of_campaign calls it)."""
    _END_OF_RUN[:] = [func]


def end_of_campaign(success: bool) -> None:
    """Where the results are, or which jobs failed and the tables of what exists (results/partial/).
    mergelab's own onsuccess/onerror do it; Snakemake runs only the main Snakefile's handlers, so a
    workflow that uses mergelab as a module calls this from its own (config/README.md)."""
    for func in _END_OF_RUN:
        func(success)


def failed_jobs(jobs) -> List[Dict[str, Any]]:
    """The jobs of this run that failed (Snakemake's scheduler's), as {rule, wildcards, logs}."""
    out = [{"rule": j.rule.name, "wildcards": dict(j.wildcards_dict), "logs": [str(f) for f in j.log]} for j in jobs]
    return sorted(out, key=lambda j: (j["rule"], sorted(j["wildcards"].items())))


def run_partial_build(exp, planned_outputs, log_path: str, scripts: Path) -> bool:
    """After a failed run that was to make the tables (``planned_outputs`` holds the leaderboard,
    whatever its rule is called in a workflow that uses mergelab as a module): the tables and
    figures of the results that exist, in results/partial/, by ``python -m mergelab.analysis.outputs`` (a
    subprocess: no heavy import in the process that built the DAG). True when it succeeded."""
    import subprocess
    import tempfile

    if paths.TABLES["leaderboard"] not in planned_outputs:
        return False
    spec = {
        "organize_job": exp.job_params("organize"),
        "plot_job": exp.job_params("plot"),
        "log": log_path,
        "source": exp.source,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    proc = subprocess.run([sys.executable, "-m", "mergelab.analysis.outputs", fh.name], env=subprocess_env(scripts))
    os.unlink(fh.name)
    return proc.returncode == 0


def end_of_run(
    success: bool,
    failed: List[Dict[str, Any]] = (),
    partial: bool = False,
    keep_going: bool = True,
    partial_log: str = "logs/organize/partial.log",
) -> str:
    """What the console says last: where the results are, or which jobs failed (each
    {rule, wildcards, logs}) and where the tables of what exists went."""
    lines = []
    leaderboard = Path(paths.TABLES["leaderboard"])
    if success:
        lines.append("mergelab: done.")
        if leaderboard.is_file():
            lines.append(f"  leaderboard: {leaderboard}; tables: {leaderboard.parent}/; figures: {paths.PLOTS}/")
            report = "" if Path(paths.REPORT).is_file() else "make it with: "
            lines.append(f"  HTML report: {report}snakemake --report {paths.REPORT}")
        if Path(paths.MERGES_TABLE).is_file():
            lines.append(
                f"  merges: {paths.MERGES_TABLE} (ids and recipes), weights in {Path(paths.MERGED_MODEL).parent}/"
            )
        return "\n".join(lines)
    lines.append(
        f"mergelab: {len(failed)} job(s) failed; each log ends with the cause:"
        if failed
        else "mergelab: the run failed."
    )
    for job in failed:
        wc = ", ".join(f"{k}={v}" for k, v in job["wildcards"].items())
        lines.append(f"  {job['rule']}{f' ({wc})' if wc else ''}: {', '.join(job['logs']) or 'no log'}")
    if partial:
        lines.append(
            f"  tables and figures from the results that exist (gaps marked missing, listed in {partial_log}): "
            f"{paths.PARTIAL}/ (leaderboard: {paths.partial(paths.TABLES['leaderboard'])}); "
            f"{leaderboard.parent}/ keeps what the last complete run made"
        )
    if not keep_going:
        lines.append("  with --keep-going, the jobs that do not depend on a failed one still run")
    return "\n".join(lines)


def main(spec_path: str) -> None:
    """The onerror path: tables and figures from whatever results exist, in results/partial/.
    SPEC.json: {"organize_job": OrganizeJob params, "plot_job": PlotJob params, "log": path, "source": config}."""
    from datetime import datetime

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    organize, plot = OrganizeJob.from_params(spec["organize_job"]), PlotJob.from_params(spec["plot_job"])
    with job_log(spec["log"]):
        log.info("a run of %s failed: building tables and figures from the results that exist", spec["source"])
        build_partial(organize.catalogue, organize.files, plot.figures)
        when = datetime.now().astimezone().isoformat(timespec="seconds")
        text = PARTIAL_README.format(source=spec["source"], when=when, log=spec["log"])
        (Path(paths.PARTIAL) / "README.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
