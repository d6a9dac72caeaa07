# Harness stage: lm-evaluation-harness, one job per (model, task), each on its own GPU(s).
# Tasks that log samples get a second declared output; two rules with disjoint
# task constraints keep every job's outputs exactly what it declares.


rule harness_eval:
    input:
        unpack(get_harness_input),
    output:
        json="results/harness/{model}/{task}.json",
    log:
        "logs/harness_eval/{model}/{task}.log",
    benchmark:
        "benchmarks/harness_eval/{model}/{task}.tsv"
    params:
        spec=get_harness_params,
    threads: get_gpu_job_threads
    resources:
        gpu=get_harness_gpus,
        mem_mb=get_harness_mem_mb,
        runtime=get_harness_runtime,
    wildcard_constraints:
        task=HARNESS_PLAIN_TASKS,
    conda:
        "../../envs/lm-eval.yaml"
    script:
        "../../scripts/run_harness.py"


use rule harness_eval as harness_eval_samples with:
    output:
        json="results/harness/{model}/{task}.json",
        samples="results/harness/{model}/{task}.samples.jsonl",
    wildcard_constraints:
        task=HARNESS_SAMPLES_TASKS,
