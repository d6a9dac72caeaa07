# mergelab: merge LLMs with mergekit, evaluate parents and merges, tabulate and plot.
# The workflow itself is workflow/Snakefile (stages in workflow/rules/), which another workflow can
# also load as a Snakemake module (config/README.md); this file runs it from a clone.

from snakemake.utils import min_version

min_version("9.27")

# What the `include:` directive does, keeping the included workflow's default target (`all`).
workflow.include("workflow/Snakefile", overwrite_default_target=True)
