# Organize and plot stages: tidy tables from every result file, then the figures.


rule organize:
    input:
        unpack(get_organize_input),
    output:
        **{k: report(v, category="Tables", caption="../report/tables.rst") if k == "leaderboard" else v
           for k, v in TABLES.items()},
    log:
        "logs/organize/organize.log",
    params:
        context=get_organize_context,
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/run_organize.py"


rule plot:
    input:
        **TABLES,
    output:
        plot_outputs(),
    log:
        "logs/plot/plot.log",
    params:
        context=get_organize_context,
        spec=get_plot_params,
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/run_plot.py"
