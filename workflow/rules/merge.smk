# Merge stage: one job per merge id, through mergekit's Python API. A merge whose weights
# are deleted (storage.keep_merges) is made by merge_released, whose output is temp: Snakemake
# deletes it once every job that reads it has finished; merge_record keeps its card, mergekit
# config and checksums. Disjoint wildcard constraints give each merge one of the two rules.


rule merge:
    input:
        unpack(get_merge_input),
    output:
        directory(paths.MERGED_MODEL),
    log:
        "logs/merge/{model}.log",
    benchmark:
        "benchmarks/merge/{model}.tsv"
    wildcard_constraints:
        model=f"(?!(?:{_ids_regex(RELEASED)})$)[^/]+" if RELEASED else "[^/]+",
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


if RELEASED:

    use rule merge as merge_released with:
        output:
            temp(directory(paths.MERGED_MODEL)),
        wildcard_constraints:
            model=_ids_regex(RELEASED),

    rule merge_record:
        input:
            unpack(get_merge_record_input),
        output:
            directory(paths.MERGE_RECORD),
        log:
            "logs/merge_record/{model}.log",
        priority: READER_PRIORITY
        conda:
            "../../envs/analysis.yaml"
        script:
            "../../scripts/run_merge_record.py"


rule merges_table:
    input:
        unpack(get_merges_table_input),
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
