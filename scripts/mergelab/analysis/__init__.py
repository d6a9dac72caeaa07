"""Every number after the jobs: the statistics, the comparisons, the tidy tables (organize, outputs)
and the figures (plots, plot_kit, search_plot). Nothing below this layer imports it."""
