# Organize and plot stages: tidy tables from every result file, then the figures
# (both declared once, in mergelab.plan.paths.TABLES and mergelab.plan.figures.FIGURES).


rule organize:
    input:
        unpack(job_input("organize")),
    output:
        **table_outputs(),
    log:
        "logs/organize/organize.log",
    localrule: light_rule("organize")
    conda:
        "../../envs/analysis.yaml"
    params:
        rule_version=version_param("organize"),
        catalogue=job_param("organize", "catalogue"),
        files=job_param("organize", "files"),
    script:
        "../../scripts/run_organize.py"


rule plot:
    input:
        unpack(job_input("plot")),
    output:
        plot_outputs(),
    log:
        "logs/plot/plot.log",
    localrule: light_rule("plot")
    conda:
        "../../envs/analysis.yaml"
    params:
        rule_version=version_param("plot"),
        catalogue=job_param("plot", "catalogue"),
        figures=job_param("plot", "figures"),
    script:
        "../../scripts/run_plot.py"
