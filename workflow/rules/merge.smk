# Merge stage: one job per merge id, through mergekit's Python API.


rule merge:
    input:
        unpack(get_merge_input),
    output:
        directory("results/models/{model}"),
    log:
        "logs/merge/{model}.log",
    benchmark:
        "benchmarks/merge/{model}.tsv"
    params:
        config=get_merge_config,
        meta=get_merge_meta,
        seed=get_merge_seed,
        receipts=get_merge_receipts,
    threads: get_gpu_job_threads
    resources:
        gpu=get_merge_gpus,
        mem_mb=get_merge_mem_mb,
        runtime=get_merge_runtime,
    conda:
        "../../envs/mergekit.yaml"
    script:
        "../../scripts/run_merge.py"


rule merges_table:
    output:
        "results/merges.tsv",
    log:
        "logs/merges_table/merges_table.log",
    params:
        table=EXP.merges_table(),
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/write_merges_table.py"
