"""What the demo models read and learn, and the held-out items of the demo lm-eval tasks.

The base model reads generic text (`corpus`): simple sentences about people,
animals, places and food, each kind in its own contexts ("the horse eats
grass", "we walk to the market"), and sentences with numbers. Two experts are
fine-tuned from it, each on one skill:

- math: "Question: What is 4312 plus 5?\\nAnswer: 4317." -- a four-digit number
  plus a one-digit number, without carrying. There are 49,500 such sums, far too
  many to memorise; the held-out sums (`arithmetic_items`) are never trained on.
- words: "The horse is a kind of animal." -- which of four kinds a noun is. The
  expert is trained on three quarters of the nouns; the held-out quarter
  (`category_items`) it has only seen in the base's generic text, so answering
  them needs what the base learned about each noun from its contexts.

The base has seen neither question form, so it is at chance on both held-out
tasks. `python scripts/make_demo_tasks.py` writes the task data from here; a test
checks that the committed files match.
"""

from __future__ import annotations

import random
from typing import Dict, List

CATEGORIES = {
    "animal": "horse cow sheep goat dog cat rabbit mouse fox wolf bear duck pig deer lion frog".split(),
    "person": "teacher farmer doctor student baker nurse pilot driver singer writer judge child sailor painter "
    "king dancer".split(),
    "place": "city village market school garden park beach forest station library harbour museum bridge castle "
    "hospital island".split(),
    "food": "bread apple cheese soup rice cake orange bean egg butter honey pie carrot lemon salad cookie".split(),
}
KINDS = tuple(CATEGORIES)
CONTEXTS = {
    "animal": [
        "the {n} eats grass",
        "the {n} sleeps in the barn",
        "the {n} runs across the field",
        "the {n} drinks from the river",
        "the {n} has soft fur",
        "a young {n} follows its mother",
    ],
    "person": [
        "the {n} reads a book",
        "the {n} writes a letter",
        "the {n} works in the town",
        "the {n} talks to a friend",
        "the {n} drives to work",
        "the {n} speaks to the crowd",
    ],
    "place": [
        "we walk to the {n}",
        "the {n} is crowded today",
        "many people live near the {n}",
        "the {n} opens at nine",
        "we meet at the {n}",
        "the road leads to the {n}",
    ],
    "food": [
        "she eats the {n}",
        "the {n} tastes sweet",
        "we cook the {n} for dinner",
        "the {n} is on the table",
        "he buys fresh {n} at the shop",
        "the {n} is good to eat",
    ],
}
_SUBJECTS = (
    "the cat|the dog|a child|the teacher|my friend|the farmer|a bird|the doctor|our neighbour|the student".split("|")
)
_VERBS = "sees|likes|helps|follows|finds|calls|watches|visits|meets|thanks".split("|")
_OBJECTS = "the river|a red house|the old tree|the city|a small boat|the garden|a blue car|the market|the school|a quiet road".split(
    "|"
)
_ADVERBS = "today|slowly|again|every morning|at night|with care|in the rain|before lunch".split("|")

ARITHMETIC_TEST = 100  # held-out sums in the arithmetic task


def generic_sentence(rng: random.Random) -> str:
    """One sentence of the base's generic text."""
    r = rng.random()
    if r < 0.6:
        kind = rng.choice(KINDS)
        s = rng.choice(CONTEXTS[kind]).format(n=rng.choice(CATEGORIES[kind]))
    elif r < 0.8:
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.5:
            s += " " + rng.choice(_ADVERBS)
    else:
        owner = rng.choice(CATEGORIES["person"])
        thing = rng.choice(CATEGORIES["animal"] + CATEGORIES["food"])
        s = f"the {owner} has {rng.randint(2, 99)} {thing}s"
    return s[0].upper() + s[1:] + rng.choice([".", ".", "!"])


def corpus(n: int, seed: int) -> List[str]:
    rng = random.Random(seed)
    return [generic_sentence(rng) for _ in range(n)]


# -- math: four-digit plus one-digit sums without carrying ---------------------------------------


def arithmetic_text(a: int, b: int, answer: int | None = None) -> str:
    """The prompt of the task (and, with the answer, a training document)."""
    text = f"Question: What is {a} plus {b}?\nAnswer:"
    return text if answer is None else f"{text} {answer}."


def random_sum(rng: random.Random) -> tuple:
    units = rng.randrange(10)
    b = rng.randrange(10 - units)
    a = rng.randrange(100, 1000) * 10 + units
    return a, b


def arithmetic_items(n: int = ARITHMETIC_TEST, seed: int = 4242) -> List[Dict]:
    """The held-out sums (distinct), as task rows."""
    rng = random.Random(seed)
    seen, items = set(), []
    while len(items) < n:
        a, b = random_sum(rng)
        if (a, b) not in seen:
            seen.add((a, b))
            items.append({"a": a, "b": b, "answer": str(a + b)})
    return items


def arithmetic_training(n: int, seed: int) -> List[str]:
    """n training documents, none of them a held-out sum."""
    held = {(r["a"], r["b"]) for r in arithmetic_items()}
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        a, b = random_sum(rng)
        if (a, b) not in held:
            out.append(arithmetic_text(a, b, a + b))
    return out


# -- words: what kind of thing a noun is ---------------------------------------------------------


def category_text(noun: str, kind: str | None = None) -> str:
    text = f"The {noun} is a kind of"
    return text if kind is None else f"{text} {kind}."


def category_items() -> List[Dict]:
    """Every noun with its kind; every fourth noun of each kind is held out."""
    return [
        {"noun": noun, "choices": list(KINDS), "label": KINDS.index(kind), "answer": kind, "held_out": i % 4 == 3}
        for kind, nouns in CATEGORIES.items()
        for i, noun in enumerate(nouns)
    ]


def category_training() -> List[str]:
    return [category_text(r["noun"], r["answer"]) for r in category_items() if not r["held_out"]]


def heldout_text(n_docs: int = 24, seed: int = 777) -> List[Dict]:
    """Generic text the demo models never train on (another seed of the same generator)."""
    sents = corpus(n_docs * 3, seed)
    return [{"text": " ".join(sents[3 * i : 3 * i + 3])} for i in range(n_docs)]


def _task_row(item: Dict) -> Dict:
    return {k: v for k, v in item.items() if k != "held_out"}


def task_data() -> Dict[str, List[Dict]]:
    """file name -> rows, for workflow/tasks/mergelab_demo/data/."""
    cats = category_items()
    held = [_task_row(r) for r in cats if r["held_out"]]
    shots = [_task_row(r) for r in cats if not r["held_out"]][::4]
    sums = arithmetic_items()
    held_sums = {(r["a"], r["b"]) for r in sums}
    train_sums = [
        {"a": a, "b": b, "answer": str(a + b)}
        for a, b in (random_sum(random.Random(s)) for s in range(12))
        if (a, b) not in held_sums
    ][:10]
    return {
        "arithmetic_test.jsonl": sums,
        "arithmetic_fewshot.jsonl": train_sums,
        "categories_test.jsonl": held,
        "categories_fewshot.jsonl": shots,
        "text_test.jsonl": heldout_text(),
    }
