# Harness stage: lm-evaluation-harness. Tasks reading from the Hub get their datasets once, by the
# local rule harness_data (the submitting machine has the internet; compute nodes may not), and
# every harness job waits for its tasks' receipts and runs with the Hub offline.
# harness.jobs: per_task (the default): one job per (model, task), each on its own GPU(s),
# writing the results JSON and the per-item results (parquet); tasks that log samples get a
# third declared output, and two rules with disjoint task constraints keep every job's outputs
# exactly what it declares.
# per_model: one job per model (harness_eval_model) runs all its tasks after one model load and
# writes the same files; only one of the two kinds of rule is defined.


rule harness_data:
    output:
        paths.HARNESS_DATA,
    log:
        "logs/harness_data/{task}.log",
    wildcard_constraints:
        task=paths.one_of(EXP.harness.data_tasks),
    localrule: light_rule("harness_data")
    conda:
        "../../envs/lm-eval.yaml"
    params:
        rule_version=version_param("harness_data"),
        task=job_param("harness_data", "task"),
        include_paths=job_param("harness_data", "include_paths"),
        include_defaults=job_param("harness_data", "include_defaults"),
        cache_dir=job_param("harness_data", "cache_dir"),
    script:
        "../../scripts/run_harness_data.py"


if EXP.harness.jobs == "per_task":

    rule harness_eval:
        input:
            unpack(job_input("harness_eval")),
        output:
            json=paths.HARNESS_JSON,
            per_item=paths.HARNESS_ITEMS,
        log:
            "logs/harness_eval/{model}/{task}.log",
        benchmark:
            "benchmarks/harness_eval/{model}/{task}.tsv"
        wildcard_constraints:
            model=paths.HARNESS_MODEL,
            task=paths.one_of([t for t in EXP.harness.tasks if t not in EXP.harness.samples_tasks]),
        priority: rule_priority("harness_eval")
        conda:
            "../../envs/lm-eval.yaml"
        threads: get_gpu_job_threads
        resources:
            gpu=job_resource("harness_eval", "gpu"),
            mem_mb=job_resource("harness_eval", "mem_mb"),
            runtime=job_resource("harness_eval", "runtime"),
        params:
            rule_version=version_param("harness_eval"),
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
            per_item=paths.HARNESS_ITEMS,
            samples=paths.HARNESS_SAMPLES,
        wildcard_constraints:
            model=paths.HARNESS_MODEL,
            task=paths.one_of(EXP.harness.samples_tasks),

else:

    rule harness_eval_model:
        input:
            unpack(job_input("harness_eval_model")),
        output:
            **EXP.harness.model_outputs(),
        log:
            "logs/harness_eval_model/{model}.log",
        benchmark:
            "benchmarks/harness_eval_model/{model}.tsv"
        wildcard_constraints:
            model=paths.HARNESS_MODEL,
        priority: rule_priority("harness_eval_model")
        conda:
            "../../envs/lm-eval.yaml"
        threads: get_gpu_job_threads
        resources:
            gpu=job_resource("harness_eval_model", "gpu"),
            mem_mb=job_resource("harness_eval_model", "mem_mb"),
            runtime=job_resource("harness_eval_model", "runtime"),
        params:
            rule_version=version_param("harness_eval_model"),
            model=job_param("harness_eval_model", "model"),
            model_path=job_param("harness_eval_model", "model_path"),
            receipt=job_param("harness_eval_model", "receipt"),
            tasks=job_param("harness_eval_model", "tasks"),
            groups=job_param("harness_eval_model", "groups"),
            settings=job_param("harness_eval_model", "settings"),
            include_paths=job_param("harness_eval_model", "include_paths"),
            include_defaults=job_param("harness_eval_model", "include_defaults"),
            local_tasks=job_param("harness_eval_model", "local_tasks"),
        script:
            "../../scripts/run_harness_model.py"
