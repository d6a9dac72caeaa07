"""Snakemake job of rule `holmes_data`: obtain and validate the probing datasets, write their manifest."""

import csv
import json
from pathlib import Path

from mergelab.jobs import atomic_file, job_log


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        from mergelab.holmes_data import manifest_rows, obtain

        spec = json.loads(smk.params.spec)
        folder = obtain(spec["version"], Path(spec["root"]),
                        Path(spec["archive"]) if spec["archive"] else None, spec["url"])
        rows = manifest_rows(folder, spec["datasets"])
        log.info("%d datasets valid in %s", len(rows), folder)
        with atomic_file(smk.output[0], newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["probing_dataset"],
                                    delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
