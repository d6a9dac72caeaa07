"""Loaders for the demo tasks: read the data beside this file, whatever the working directory.

(lm-eval resolves `dataset_kwargs: data_files` against the current directory;
`custom_dataset` functions let the data travel with the task.)
"""

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _rows(name):
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _splits(**files):
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_list(_rows(name)) for split, name in files.items()})


def load_arithmetic(**kwargs):
    return _splits(test="arithmetic_test.jsonl", fewshot="arithmetic_fewshot.jsonl")


def load_categories(**kwargs):
    return _splits(test="categories_test.jsonl", fewshot="categories_fewshot.jsonl")


def load_text(**kwargs):
    return _splits(test="text_test.jsonl")
