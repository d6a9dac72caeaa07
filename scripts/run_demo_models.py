"""Snakemake job of rule `demo_models`: the demo base model and its variants."""

from mergelab.jobs import atomic_dir, job_log


def main(smk) -> None:
    with job_log(smk.log[0]):
        from contextlib import ExitStack

        from mergelab.demo import build_demo_models

        with ExitStack() as stack:
            dirs = {name: stack.enter_context(atomic_dir(path)) for name, path in smk.output.items()}
            build_demo_models(dirs, seed=int(smk.params.seed), size=smk.params.size)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
