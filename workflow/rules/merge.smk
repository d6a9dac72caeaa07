# Merge stage: one job per merge id, through mergekit's Python API. A merge whose weights
# are deleted (storage.keep_merges) is made by merge_released, whose output is temp: Snakemake
# deletes it once every job that reads it has finished; merge_record keeps its card, mergekit
# config and checksums. Disjoint wildcard constraints give each merge one of the two rules.


rule merge:
    input:
        unpack(job_input("merge")),
    output:
        directory(paths.MERGED_MODEL),
    log:
        "logs/merge/{model}.log",
    benchmark:
        "benchmarks/merge/{model}.tsv"
    wildcard_constraints:
        model=f"(?!(?:{paths.one_of(RELEASED)})$)[^/]+" if RELEASED else "[^/]+",
    conda:
        "../../envs/mergekit.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("merge", "gpu"),
        mem_mb=job_resource("merge", "mem_mb"),
        runtime=job_resource("merge", "runtime"),
    params:
        rule_version=version_param("merge"),
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
            model=paths.one_of(RELEASED),

    rule merge_record:
        input:
            unpack(job_input("merge_record")),
        output:
            directory(paths.MERGE_RECORD),
        log:
            "logs/merge_record/{model}.log",
        priority: rule_priority("merge_record")
        conda:
            "../../envs/analysis.yaml"
        params:
            rule_version=version_param("merge_record"),
        script:
            "../../scripts/run_merge_record.py"


rule merges_table:
    input:
        unpack(job_input("merges_table")),
    output:
        paths.MERGES_TABLE,
    log:
        "logs/merges_table/merges_table.log",
    localrule: light_rule("merges_table")
    conda:
        "../../envs/analysis.yaml"
    params:
        rule_version=version_param("merges_table"),
        merges=job_param("merges_table", "merges"),
    script:
        "../../scripts/write_merges_table.py"
