# Harness stage: lm-evaluation-harness, one job per (model, task), each on its own GPU(s).
# Tasks that log samples get a second declared output; two rules with disjoint
# task constraints keep every job's outputs exactly what it declares.


rule harness_eval:
    input:
        unpack(get_harness_input),
    output:
        json=paths.HARNESS_JSON,
    log:
        "logs/harness_eval/{model}/{task}.log",
    benchmark:
        "benchmarks/harness_eval/{model}/{task}.tsv"
    wildcard_constraints:
        task=HARNESS_PLAIN_TASKS,
    conda:
        "../../envs/lm-eval.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("harness_eval", "gpu"),
        mem_mb=job_resource("harness_eval", "mem_mb"),
        runtime=job_resource("harness_eval", "runtime"),
    params:
        model=job_param("harness_eval", "model"),
        model_path=job_param("harness_eval", "model_path"),
        receipt=job_param("harness_eval", "receipt"),
        task=job_param("harness_eval", "task"),
        settings=job_param("harness_eval", "settings"),
        include_paths=job_param("harness_eval", "include_paths"),
        include_defaults=job_param("harness_eval", "include_defaults"),
    script:
        "../../scripts/run_harness.py"


use rule harness_eval as harness_eval_samples with:
    output:
        json=paths.HARNESS_JSON,
        samples=paths.HARNESS_SAMPLES,
    wildcard_constraints:
        task=HARNESS_SAMPLES_TASKS,
