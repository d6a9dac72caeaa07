"""One Holmes / Flash-Holmes evaluation of one model: encode every dataset once, probe all seeds."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any, Dict, List

from mergelab.evaluate.holmes_data import read_dataset
from mergelab.evaluate.holmes_encode import (
    Requests,
    check_tokens,
    encode,
    load_model,
    load_tokenizer,
    probe_features,
    row_requests,
)
from mergelab.plan.jobs import HolmesSettings
from mergelab.runtime.jobs import atomic_file

log = logging.getLogger("mergelab.holmes")

COLUMNS = [
    "probing_dataset",
    "model_name",
    "encoding",
    "control_task_type",
    "sample_size",
    "seed",
    "num_hidden_layers",
    "score",
    "metric",
    "objective",
    "dtype",
    "n_train",
    "n_dev",
    "n_test",
    "epochs",
    "best_epoch",
]


def encoding_name(dtype: str) -> str:
    """The reference's `encoding` column: full precision, or half."""
    return "full" if dtype == "float32" else "half"


def evaluate(
    model: str,
    model_path: str,
    data_dir: str,
    datasets: List[str],
    settings: HolmesSettings,
    device: str,
    threads: int = 0,
    gpus: int = 1,
) -> List[Dict[str, Any]]:
    """Score rows (the reference columns and more) of `model` on `datasets`."""
    import torch

    # numpy comes with probe: not at the top, where the jobs that only write scores import this module
    from mergelab.evaluate.probe import ProbeSettings, ProbeTask, train_probes

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    data = [read_dataset(Path(data_dir) / name) for name in datasets]
    log.info("read %d datasets (%d rows) in %.1f s", len(data), sum(len(d.rows) for d in data), time.time() - t0)

    remote = settings.trust_remote_code
    tok, max_length = load_tokenizer(model_path, remote)
    req = Requests()
    sep = tok.sep_token or ""
    rows = [row_requests(ds, req, sep) for ds in data]
    check_tokens(tok, data, rows, req)
    encoder = load_model(model_path, settings.dtype, device, remote, gpus=gpus)
    dtype = str(next(encoder.parameters()).dtype).replace("torch.", "")
    vectors = encode(encoder, tok, req, batch_size=settings.batch_size, max_length=settings.max_length or max_length)
    del encoder
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    mode = settings.features
    log.info("features: %s%s", mode, " (float16 where Holmes' own code rounds them)" if mode == "reference" else "")
    tasks = []
    for ds, r in zip(data, rows):
        x = probe_features(ds, r, vectors, encoding=encoding_name(dtype), mode=mode)
        parts = {}
        for split in ("train", "dev", "test"):
            idx = torch.tensor([i for i, row in enumerate(ds.rows) if row.split == split])
            labels = [ds.rows[i].label for i in idx.tolist()]
            y = torch.tensor(labels, dtype=torch.float32 if ds.regression else torch.long)
            parts[split] = (x[idx], y)
        tasks.append(ProbeTask(ds.name, ds.num_labels, *parts["train"], *parts["dev"], *parts["test"]))
    t1 = time.time()
    results = train_probes(
        tasks, settings.seeds, ProbeSettings(objective=settings.objective), device=device, log=log.info
    )
    log.info("trained %d probes in %.1f s", len(results), time.time() - t1)
    sizes = {ds.name: ds for ds in data}
    out = []
    for r in results:
        ds = sizes[r.name]
        out.append(
            {
                "probing_dataset": r.name,
                "model_name": model,
                "encoding": encoding_name(dtype),
                "control_task_type": "NONE",
                "sample_size": len(ds.rows),
                "seed": r.seed,
                "num_hidden_layers": 0,
                "score": r.score,
                "metric": r.metric,
                "objective": settings.objective,
                "dtype": dtype,
                "n_train": len(ds.split("train")),
                "n_dev": len(ds.split("dev")),
                "n_test": len(ds.split("test")),
                "epochs": r.epochs,
                "best_epoch": r.best_epoch,
            }
        )
    return out


def write_scores(rows: List[Dict[str, Any]], path: str) -> None:
    with atomic_file(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if isinstance(r[k], float) and r[k] != r[k] else r[k]) for k in COLUMNS})
