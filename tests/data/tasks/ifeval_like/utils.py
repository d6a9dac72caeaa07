"""An IFEval-style test task: instruction-following metrics at prompt and instruction level.

Its metric names and aggregation mirror lm-eval's ifeval task (prompt_level_*_acc
averaged over prompts, inst_level_*_acc over all instructions), so the tables
can be tested on real result files with these metrics, offline.
"""

import json
from pathlib import Path

CHECKS = {
    "lowercase": lambda r: r == r.lower(),
    "one_word": lambda r: len(r.split()) <= 1,
    "no_comma": lambda r: "," not in r,
}


def load(**kwargs):
    from datasets import Dataset, DatasetDict

    rows = [json.loads(line) for line in (Path(__file__).with_name("prompts.jsonl")).read_text().splitlines()]
    return DatasetDict({"test": Dataset.from_list(rows)})


def process_results(doc, results):
    strict = [CHECKS[i](results[0]) for i in doc["instructions"]]
    loose = [CHECKS[i](results[0].strip().lower()) for i in doc["instructions"]]
    return {
        "prompt_level_strict_acc": all(strict),
        "inst_level_strict_acc": strict,
        "prompt_level_loose_acc": all(loose),
        "inst_level_loose_acc": loose,
    }


def agg_inst_level_acc(items):
    flat = [x for item in items for x in item]
    return sum(flat) / len(flat)
