# Demo models for the embedded default config and the tests, trained offline
# (mergelab.embedded.demo: a base and two experts; about a minute on two cores).


rule demo_models:
    output:
        base=directory(paths.DEMO_MODEL.format(name="base")),
        math=directory(paths.DEMO_MODEL.format(name="math")),
        words=directory(paths.DEMO_MODEL.format(name="words")),
    log:
        "logs/demo_models/demo_models.log",
    benchmark:
        "benchmarks/demo_models/demo_models.tsv"
    localrule: light_rule("demo_models")
    conda:
        "../../envs/mergekit.yaml"
    threads: 2
    params:
        rule_version=version_param("demo_models"),
        seed=0,
        size="demo",
    script:
        "../../scripts/run_demo_models.py"
