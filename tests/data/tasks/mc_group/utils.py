"""Data loader of the capitals test task (read beside this file)."""

import json
from pathlib import Path


def load(**kwargs):
    from datasets import Dataset, DatasetDict

    rows = [json.loads(line) for line in Path(__file__).with_name("capitals.jsonl").read_text().splitlines()]
    return DatasetDict({"test": Dataset.from_list(rows)})
