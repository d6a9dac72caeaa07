"""Snakemake job of rule `search_plot`: a merge search's figure (mergelab.analysis.search_plot.search)."""

from pathlib import Path

from mergelab.plan.jobs import SearchPlotJob
from mergelab.runtime.jobs import job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        import pandas as pd
        import yaml

        from mergelab.analysis.search_plot import search

        job = SearchPlotJob.from_params(smk.params)
        with open(smk.input.best, encoding="utf-8") as fh:
            best = [b["trial"] for b in (yaml.safe_load(fh) or {}).get("best") or []]
        search(pd.read_csv(smk.input.trials), job.search, best, Path(smk.output.png).with_suffix(""))


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
