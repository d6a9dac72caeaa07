# Hub stage: fetch the hub parents once (on the machine that runs snakemake: compute
# nodes may have no internet), push the merges, then add their results to the cards.


rule fetch:
    output:
        "results/hub/parents/{model}.json",
    log:
        "logs/fetch/{model}.log",
    params:
        spec=get_fetch_params,
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/hub.yaml"
    script:
        "../../scripts/run_fetch.py"


rule push:
    input:
        model="results/models/{model}",
    output:
        "results/hub/{model}.json",
    log:
        "logs/push/{model}.log",
    params:
        spec=get_push_params,
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/hub.yaml"
    script:
        "../../scripts/run_push.py"


rule push_results:
    input:
        receipt="results/hub/{model}.json",
        model="results/models/{model}",
        harness=TABLES["harness"],
        competences=TABLES["competences"],
    output:
        "results/hub/results/{model}.json",
    log:
        "logs/push_results/{model}.log",
    params:
        spec=get_push_results_params,
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/hub.yaml"
    script:
        "../../scripts/run_push_results.py"
