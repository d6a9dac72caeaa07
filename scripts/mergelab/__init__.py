"""mergelab: merge LLMs with mergekit, evaluate with lm-eval and Holmes, tabulate and plot."""

__version__ = "0.1.0"
