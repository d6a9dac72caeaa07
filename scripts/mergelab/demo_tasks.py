"""The skills of the demo models and the held-out items of the demo lm-eval tasks.

Two skills, each with a training part (for the demo models) and a held-out part
(the lm-eval tasks under workflow/tasks/mergelab_demo/), never mixed:

- arithmetic: "What is three plus four?" -> "seven" (numbers zero to nine);
- antonyms: "The opposite of hot is" -> "cold", asked as multiple choice;

plus held-out generic text for a perplexity task. `python scripts/make_demo_tasks.py`
writes the task data from here; a test checks the committed files match.
"""

from __future__ import annotations

import random
from typing import Dict, List

NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
           "fifteen sixteen seventeen eighteen").split()

ANTONYMS = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("good", "bad"),
    ("up", "down"), ("open", "closed"), ("light", "dark"), ("high", "low"), ("early", "late"),
    ("full", "empty"), ("hard", "soft"), ("long", "short"), ("rich", "poor"), ("strong", "weak"),
    ("wet", "dry"), ("clean", "dirty"), ("loud", "quiet"), ("thick", "thin"), ("young", "old"),
    ("near", "far"), ("win", "lose"), ("buy", "sell"), ("push", "pull"), ("inside", "outside"),
    ("day", "night"), ("left", "right"), ("first", "last"), ("true", "false"), ("love", "hate"),
    ("begin", "end"), ("give", "take"),
]


def arithmetic_items() -> List[Dict]:
    return [
        {"a": NUMBERS[a], "b": NUMBERS[b], "answer": NUMBERS[a + b], "held_out": (7 * a + 3 * b) % 5 == 0}
        for a in range(10)
        for b in range(10)
    ]


def antonym_items(seed: int = 0) -> List[Dict]:
    """Both directions of every pair; a pair is held out as a whole (every fourth)."""
    rng = random.Random(seed)
    words = [w for pair in ANTONYMS for w in pair]
    items = []
    for i, (x, y) in enumerate(ANTONYMS):
        for word, answer in ((x, y), (y, x)):
            distractors = rng.sample([w for w in words if w not in (x, y)], 3)
            label = rng.randrange(4)
            choices = distractors[:label] + [answer] + distractors[label:]
            items.append({"word": word, "answer": answer, "choices": choices, "label": label,
                          "held_out": i % 4 == 3})
    return items


def heldout_text(n_docs: int = 24, seed: int = 777) -> List[Dict]:
    """Generic text the demo models never train on (another seed of the same generator)."""
    from mergelab.demo import synthetic_corpus

    sents = [s for s in synthetic_corpus(n=n_docs * 3, seed=seed) if " " in s][: n_docs * 3]
    return [{"text": " ".join(sents[3 * i: 3 * i + 3])} for i in range(n_docs)]


def task_data() -> Dict[str, List[Dict]]:
    """file name -> rows, for workflow/tasks/mergelab_demo/data/."""
    def strip(rows):
        return [{k: v for k, v in r.items() if k != "held_out"} for r in rows]

    arith = arithmetic_items()
    ant = antonym_items()
    return {
        "arithmetic_test.jsonl": strip([r for r in arith if r["held_out"]]),
        "arithmetic_fewshot.jsonl": strip([r for r in arith if not r["held_out"]][:10]),
        "antonyms_test.jsonl": strip([r for r in ant if r["held_out"]]),
        "antonyms_fewshot.jsonl": strip([r for r in ant if not r["held_out"]][:10]),
        "text_test.jsonl": heldout_text(),
    }
