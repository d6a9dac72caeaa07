# Organize and plot stages: tidy tables from every result file, then the figures
# (both declared once, in mergelab.plan.paths.TABLES and mergelab.outputs.FIGURES).


rule organize:
    input:
        unpack(get_organize_input),
    output:
        **table_outputs(),
    log:
        "logs/organize/organize.log",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/analysis.yaml"
    params:
        catalogue=job_param("organize", "catalogue"),
        files=job_param("organize", "files"),
    script:
        "../../scripts/run_organize.py"


rule plot:
    input:
        unpack(get_plot_input),
    output:
        plot_outputs(),
    log:
        "logs/plot/plot.log",
    localrule: LIGHT_LOCAL
    conda:
        "../../envs/analysis.yaml"
    params:
        catalogue=job_param("plot", "catalogue"),
        figures=job_param("plot", "figures"),
    script:
        "../../scripts/run_plot.py"
