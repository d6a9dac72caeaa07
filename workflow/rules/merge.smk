# Merge stage: one job per merge id, through mergekit's Python API.


rule merge:
    input:
        unpack(get_merge_input),
    output:
        directory(paths.MERGED_MODEL),
    log:
        "logs/merge/{model}.log",
    benchmark:
        "benchmarks/merge/{model}.tsv"
    conda:
        "../../envs/mergekit.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("merge", "gpu"),
        mem_mb=job_resource("merge", "mem_mb"),
        runtime=job_resource("merge", "runtime"),
    params:
        mergekit_config=job_param("merge", "mergekit_config"),
        seed=job_param("merge", "seed"),
        card=job_param("merge", "card"),
        hub_receipts=job_param("merge", "hub_receipts"),
    script:
        "../../scripts/run_merge.py"


rule merges_table:
    output:
        paths.MERGES_TABLE,
    log:
        "logs/merges_table/merges_table.log",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/analysis.yaml"
    params:
        merges=job_param("merges_table", "merges"),
    script:
        "../../scripts/write_merges_table.py"
