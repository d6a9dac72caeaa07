# mergelab: merge LLMs with mergekit, evaluate parents and merges, tabulate and plot.
# Settings, includes and target rules only; see workflow/rules/ for the stages.

from snakemake.utils import min_version

min_version("9.27")


# The config is config/experiment.yaml (the embedded default), unless the user
# names one with --configfile, which then replaces it instead of being
# deep-merged into it; common.smk loads and validates it.


# snakemake --report opens on this page: the leaderboard and what its marks mean.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/sanity.smk"
include: "workflow/rules/harness.smk"
include: "workflow/rules/holmes.smk"
include: "workflow/rules/organize.smk"
include: "workflow/rules/hub.smk"


rule all:
    default_target: True
    input:
        targets("all"),


rule merges:
    input:
        targets("merges"),


rule searches:
    input:
        targets("searches"),


rule evaluations:
    input:
        targets("evaluations"),


rule tables:
    input:
        targets("tables"),


rule plots:
    input:
        targets("plots"),


rule pushes:
    input:
        targets("pushes"),


# The last lines of every run: where the results are. After a failure, the failed
# jobs' logs, and the tables and figures of the results that exist, built in
# results/partial/ (never where a rule writes, so nothing is taken as up to date).
onsuccess:
    end_of_run(success=True)


onerror:
    end_of_run(success=False)
