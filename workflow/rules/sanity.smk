# Sanity stage (sanity.activate): one cheap check per merge before its evaluations,
# and one per model a merge reads (the merge's reference: perplexity, special tokens,
# chat template). Every evaluation job of a merge takes its check as input.


rule sanity_check:
    input:
        unpack(job_input("sanity_check")),
    output:
        paths.CHECK,
    log:
        "logs/sanity_check/{model}.log",
    benchmark:
        "benchmarks/sanity_check/{model}.tsv"
    priority: rule_priority("sanity_check")
    conda:
        "../../envs/lm-eval.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("sanity_check", "gpu"),
        mem_mb=job_resource("sanity_check", "mem_mb"),
        runtime=job_resource("sanity_check", "runtime"),
    params:
        rule_version=version_param("sanity_check"),
        model=job_param("sanity_check", "model"),
        model_path=job_param("sanity_check", "model_path"),
        receipt=job_param("sanity_check", "receipt"),
        parents=job_param("sanity_check", "parents"),
        on_fail=job_param("sanity_check", "on_fail"),
        max_ppl_ratio=job_param("sanity_check", "max_ppl_ratio"),
        trust_remote_code=job_param("sanity_check", "trust_remote_code"),
    script:
        "../../scripts/run_sanity.py"
