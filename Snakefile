# mergelab: merge LLMs with mergekit, evaluate parents and merges, tabulate and plot.
# Settings, includes and target rules only; see workflow/rules/ for the stages.

from snakemake.utils import min_version

min_version("9.27")


# The config is config/experiment.yaml (the embedded default), unless the user
# names one with --configfile, which then replaces it instead of being
# deep-merged into it; common.smk loads and validates it.


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/merge.smk"
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


# A failed job (with --keep-going, the others still ran): build the tables and
# figures from the results that exist, the gaps marked missing.
onerror:
    build_partial_outputs()
