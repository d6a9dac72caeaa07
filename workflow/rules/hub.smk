# Hub stage: fetch the hub parents once (on the machine that runs snakemake: compute
# nodes may have no internet), push the merges, then add their results to the cards.


rule fetch:
    output:
        paths.FETCH_RECEIPT,
    log:
        "logs/fetch/{model}.log",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/hub.yaml"
    params:
        repo_id=job_param("fetch", "repo_id"),
        revision=job_param("fetch", "revision"),
        patterns=job_param("fetch", "patterns"),
        cache_dir=job_param("fetch", "cache_dir"),
        retries=job_param("fetch", "retries"),
        retry_wait=job_param("fetch", "retry_wait"),
    script:
        "../../scripts/run_fetch.py"


rule push:
    input:
        model=paths.MERGED_MODEL,
    output:
        paths.PUSH_RECEIPT,
    log:
        "logs/push/{model}.log",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/hub.yaml"
    params:
        repo_id=job_param("push", "repo_id"),
        private=job_param("push", "private"),
        message=job_param("push", "message"),
        retries=job_param("push", "retries"),
        retry_wait=job_param("push", "retry_wait"),
    script:
        "../../scripts/run_push.py"


rule push_results:
    input:
        receipt=paths.PUSH_RECEIPT,
        model=paths.MERGED_MODEL,
        harness=paths.TABLES["harness"],
        competences=paths.TABLES["competences"],
        comparisons=paths.TABLES["comparisons"],
    output:
        paths.PUSH_RESULTS_RECEIPT,
    log:
        "logs/push_results/{model}.log",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/hub.yaml"
    params:
        repo_id=job_param("push_results", "repo_id"),
        model=job_param("push_results", "model"),
        retries=job_param("push_results", "retries"),
        retry_wait=job_param("push_results", "retry_wait"),
    script:
        "../../scripts/run_push_results.py"
