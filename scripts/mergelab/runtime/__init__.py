"""What every job stands on: job errors, logs and atomic outputs (jobs, the standard library only), the
devices a job is pinned to, and the checks of a model folder before it is read."""
