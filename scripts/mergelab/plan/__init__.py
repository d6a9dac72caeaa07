"""The typed plan: from the experiment config to what every job gets.

Built while Snakemake builds the DAG, so only yaml and jsonschema are imported.
One concern per module, in the order the config flows through them:

- ``load``        read the YAML, validate it against the schema, fill the defaults
- ``models``      the parent models (path, hub or demo) and where each one lives
- ``recipes``     `merges:` recipes -> merges with stable ids (``moe``: mixtures of experts)
- ``evaluation``  which models the harness and Holmes evaluate, with which settings
- ``hub``         which hub parents are fetched and which merges pushed where
- ``experiment``  all of it in one Experiment, and the job spec of every job
- ``catalogue``   what the tables, the figures and provenance.json know about it
- ``paths``       every path under results/, defined once
- ``jobs``        the typed job specs: built in the DAG, passed as named params,
                  parsed back in the job by the same class; the typed settings and
                  the catalogue they carry
- ``errors``      the one-line ConfigError and its did-you-mean

Importing this package imports none of its modules: a job imports ``jobs`` and
``paths`` alone.
"""
