# Holmes stage: the probing data (obtained and validated once, on the submitting
# machine), then one GPU job per model that encodes every dataset and probes it.


rule holmes_data:
    output:
        EXP.holmes.manifest,
    log:
        f"logs/holmes_data/{EXP.holmes.version}.log",
    localrule: light_rule("holmes_data")
    conda:
        "../../envs/holmes.yaml"
    params:
        rule_version=version_param("holmes_data"),
        version=job_param("holmes_data", "version"),
        root=job_param("holmes_data", "root"),
        archive=job_param("holmes_data", "archive"),
        url=job_param("holmes_data", "url"),
        datasets=job_param("holmes_data", "datasets"),
    script:
        "../../scripts/run_holmes_data.py"


rule holmes_eval:
    input:
        unpack(job_input("holmes_eval")),
    output:
        paths.HOLMES_SCORES,
    log:
        "logs/holmes_eval/{model}.log",
    benchmark:
        "benchmarks/holmes_eval/{model}.tsv"
    priority: rule_priority("holmes_eval")
    conda:
        "../../envs/holmes.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("holmes_eval", "gpu"),
        mem_mb=job_resource("holmes_eval", "mem_mb"),
        runtime=job_resource("holmes_eval", "runtime"),
    params:
        rule_version=version_param("holmes_eval"),
        model=job_param("holmes_eval", "model"),
        model_path=job_param("holmes_eval", "model_path"),
        receipt=job_param("holmes_eval", "receipt"),
        data_dir=job_param("holmes_eval", "data_dir"),
        datasets=job_param("holmes_eval", "datasets"),
        settings=job_param("holmes_eval", "settings"),
    script:
        "../../scripts/run_holmes.py"
