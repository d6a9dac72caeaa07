"""Snakemake job of rule `demo_models`: the demo base model and its two experts, trained offline."""

from mergelab.runtime.jobs import atomic_dir, job_log


def main(smk) -> None:
    with job_log(smk.log[0], console="demo_models") as log:  # a minute or more: show the steps
        from contextlib import ExitStack

        import torch

        from mergelab.embedded.demo import build_demo_models

        torch.set_num_threads(int(smk.threads))  # fixed, so the weights are reproducible
        log.info("training the demo models with seed %s on %d threads", smk.params.seed, smk.threads)
        with ExitStack() as stack:
            dirs = {name: stack.enter_context(atomic_dir(path)) for name, path in smk.output.items()}
            build_demo_models(dirs, seed=int(smk.params.seed), size=smk.params.size, log=log)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
