# Merge search (config `search:`): Optuna proposes each generation's trials (checkpoint
# search_propose); each trial is an ordinary merge (<search>_t<nnn>, rule merge), evaluated on
# the dev subset of the objectives' tasks (search_eval); the next generation's job tells the
# sampler their scores. search_summary (a checkpoint too) writes trials.csv, best.yaml and the
# journal; the best trials are then evaluated in full like any merge (the tables wait for it).


checkpoint search_propose:
    input:
        unpack(job_input("search_propose")),
    output:
        proposals=paths.SEARCH_PROPOSALS,
        journal=paths.SEARCH_GEN_JOURNAL,
    log:
        "logs/search_propose/{search}/gen{generation}.log",
    wildcard_constraints:
        search=paths.one_of(EXP.searches),
        generation=r"\d+",
    priority: rule_priority("search_propose")
    localrule: light_rule("search_propose")
    conda:
        "../../envs/analysis.yaml"
    params:
        rule_version=version_param("search_propose"),
        search=job_param("search_propose", "search"),
        generation=job_param("search_propose", "generation"),
        numbers=job_param("search_propose", "numbers"),
        models=job_param("search_propose", "models"),
        told=job_param("search_propose", "told"),
    script:
        "../../scripts/run_search_propose.py"


rule search_eval:
    input:
        unpack(job_input("search_eval")),
    output:
        paths.SEARCH_DEV,
    log:
        "logs/search_eval/{search}/{model}.log",
    benchmark:
        "benchmarks/search_eval/{search}/{model}.tsv"
    wildcard_constraints:
        search=paths.one_of(EXP.searches),
        model=paths.one_of(EXP.trial_ids),
    priority: rule_priority("search_eval")
    conda:
        "../../envs/lm-eval.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("search_eval", "gpu"),
        mem_mb=job_resource("search_eval", "mem_mb"),
        runtime=job_resource("search_eval", "runtime"),
    params:
        rule_version=version_param("search_eval"),
        model=job_param("search_eval", "model"),
        model_path=job_param("search_eval", "model_path"),
        receipt=job_param("search_eval", "receipt"),
        tasks=job_param("search_eval", "tasks"),
        groups=job_param("search_eval", "groups"),
        settings=job_param("search_eval", "settings"),
        include_paths=job_param("search_eval", "include_paths"),
        include_defaults=job_param("search_eval", "include_defaults"),
        local_tasks=job_param("search_eval", "local_tasks"),
    script:
        "../../scripts/run_search_eval.py"


rule search_probe:
    input:
        unpack(job_input("search_probe")),
    output:
        paths.SEARCH_PROBE,
    log:
        "logs/search_probe/{search}/{model}.log",
    benchmark:
        "benchmarks/search_probe/{search}/{model}.tsv"
    wildcard_constraints:
        search=paths.one_of(EXP.searches),
        model=paths.one_of(EXP.trial_ids),
    priority: rule_priority("search_probe")
    conda:
        "../../envs/holmes.yaml"
    threads: get_gpu_job_threads
    resources:
        gpu=job_resource("search_probe", "gpu"),
        mem_mb=job_resource("search_probe", "mem_mb"),
        runtime=job_resource("search_probe", "runtime"),
    params:
        rule_version=version_param("search_probe"),
        model=job_param("search_probe", "model"),
        model_path=job_param("search_probe", "model_path"),
        receipt=job_param("search_probe", "receipt"),
        data_dir=job_param("search_probe", "data_dir"),
        datasets=job_param("search_probe", "datasets"),
        settings=job_param("search_probe", "settings"),
        competences=job_param("search_probe", "competences"),
    script:
        "../../scripts/run_search_probe.py"


use rule merge as search_best with:
    output:
        temp(directory(paths.SEARCH_BEST_MODEL)) if STORAGE.best_released else directory(paths.SEARCH_BEST_MODEL),
    log:
        "logs/search_best/{search}/{model}.log",
    benchmark:
        "benchmarks/search_best/{search}/{model}.tsv"
    wildcard_constraints:
        search=paths.one_of(EXP.searches),
        model=paths.one_of(EXP.trial_ids),


checkpoint search_summary:
    input:
        unpack(job_input("search_summary")),
    output:
        trials=paths.SEARCH_TRIALS,
        best=paths.SEARCH_BEST,
        journal=paths.SEARCH_JOURNAL,
    log:
        "logs/search_summary/{search}.log",
    wildcard_constraints:
        search=paths.one_of(EXP.searches),
    localrule: light_rule("search_summary")
    conda:
        "../../envs/analysis.yaml"
    params:
        rule_version=version_param("search_summary"),
        search=job_param("search_summary", "search"),
        told=job_param("search_summary", "told"),
        recipe=job_param("search_summary", "recipe"),
    script:
        "../../scripts/run_search_summary.py"


rule search_plot:
    input:
        trials=paths.SEARCH_TRIALS,
        best=paths.SEARCH_BEST,
    output:
        png=report(
            f"{paths.SEARCH_FIGURE}.png",
            caption="../report/search.rst",
            category="Search",
        ),
        svg=f"{paths.SEARCH_FIGURE}.svg",
        csv=f"{paths.SEARCH_FIGURE}.csv",
    log:
        "logs/search_plot/{search}.log",
    wildcard_constraints:
        search=paths.one_of(EXP.searches),
    localrule: light_rule("search_plot")
    conda:
        "../../envs/analysis.yaml"
    params:
        rule_version=version_param("search_plot"),
        search=job_param("search_plot", "search"),
    script:
        "../../scripts/run_search_plot.py"
