# Holmes stage: the probing data (obtained and validated once, on the submitting
# machine), then one GPU job per model that encodes every dataset and probes it.


rule holmes_data:
    output:
        EXP.holmes.manifest,
    log:
        f"logs/holmes_data/{EXP.holmes.version}.log",
    params:
        spec=get_holmes_data_params,
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/holmes.yaml"
    script:
        "../../scripts/run_holmes_data.py"


rule holmes_eval:
    input:
        unpack(get_holmes_input),
    output:
        "results/holmes/{model}/scores.csv",
    log:
        "logs/holmes_eval/{model}.log",
    benchmark:
        "benchmarks/holmes_eval/{model}.tsv"
    params:
        spec=get_holmes_params,
    threads: get_gpu_job_threads
    resources:
        gpu=get_holmes_gpus,
        mem_mb=get_holmes_mem_mb,
        runtime=get_holmes_runtime,
    conda:
        "../../envs/holmes.yaml"
    script:
        "../../scripts/run_holmes.py"
