# Demo models for the embedded default config and the tests, built offline.


rule demo_models:
    output:
        base=directory("results/demo/base"),
        alpha=directory("results/demo/alpha"),
        beta=directory("results/demo/beta"),
    log:
        "logs/demo_models/demo_models.log",
    params:
        seed=0,
        size="demo",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/mergekit.yaml"
    script:
        "../../scripts/run_demo_models.py"
