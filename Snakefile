# mergelab: merge LLMs with mergekit, evaluate parents and merges, tabulate and plot.
# Settings, includes and target rules only; see workflow/rules/ for the stages.

from snakemake.utils import min_version

min_version("9.27")


# The embedded default config, unless the user names one with --configfile
# (which then replaces it instead of being deep-merged into it).
if not workflow.config_settings.configfiles:

    configfile: "config/experiment.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/merge.smk"


rule all:
    default_target: True
    input:
        get_all_targets,


rule merges:
    input:
        get_merges_targets,
