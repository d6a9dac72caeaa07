# Hub stage: fetch the hub parents once (on the machine that runs snakemake: compute
# nodes may have no internet), push the merges, then add their results to the cards.


rule fetch:
    output:
        paths.FETCH_RECEIPT,
    log:
        "logs/fetch/{model}.log",
    localrule: light_rule("fetch")
    conda:
        "../../envs/hub.yaml"
    params:
        rule_version=version_param("fetch"),
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
        unpack(job_input("push")),
    output:
        paths.PUSH_RECEIPT,
    log:
        "logs/push/{model}.log",
    priority: rule_priority("push")
    localrule: light_rule("push")
    conda:
        "../../envs/hub.yaml"
    params:
        rule_version=version_param("push"),
        repo_id=job_param("push", "repo_id"),
        private=job_param("push", "private"),
        message=job_param("push", "message"),
        retries=job_param("push", "retries"),
        retry_wait=job_param("push", "retry_wait"),
    script:
        "../../scripts/run_push.py"


rule push_results:
    input:
        unpack(job_input("push_results")),
    output:
        paths.PUSH_RESULTS_RECEIPT,
    log:
        "logs/push_results/{model}.log",
    localrule: light_rule("push_results")
    conda:
        "../../envs/hub.yaml"
    params:
        rule_version=version_param("push_results"),
        repo_id=job_param("push_results", "repo_id"),
        model=job_param("push_results", "model"),
        retries=job_param("push_results", "retries"),
        retry_wait=job_param("push_results", "retry_wait"),
    script:
        "../../scripts/run_push_results.py"
