"""The embedded default's own material: the tiny demo models, the local lm-eval tasks and the
synthetic Holmes-format probing sets."""
