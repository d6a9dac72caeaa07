import json
import os
import time

from mergelab.runtime.devices import pinned_devices

with pinned_devices(snakemake.resources.gpu) as devices:  # noqa: F821
    start = time.time()
    seen = os.environ["CUDA_VISIBLE_DEVICES"]
    time.sleep(0.6)
    end = time.time()
with open(snakemake.output[0], "w") as fh:  # noqa: F821
    json.dump({"devices": devices, "cvd": seen, "start": start, "end": end, "k": snakemake.resources.gpu}, fh)  # noqa: F821
