"""The embedded probing set: small synthetic datasets in exactly the Holmes layout.

    <root>/demo/<dataset>/config-none.yaml
    <root>/demo/<dataset>/samples.csv      (id, inputs, context, label, set-0)

One dataset per competence at least, and every probe task type the stage
supports: SENTENCE (binary and 3-class), SENTENCE_PAIR_BI, SENTENCE_PAIR_CROSS,
SENTENCE_TOKENS and a regression dataset. Most sentences use the demo models'
vocabulary; any text works, as the tokenizer is byte-level. Deterministic.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import yaml

SUBJECTS = [
    ("the dog", "the dogs"),
    ("the cat", "the cats"),
    ("a bird", "two birds"),
    ("the teacher", "the teachers"),
    ("my friend", "my friends"),
    ("the farmer", "the farmers"),
    ("the doctor", "the doctors"),
    ("the student", "the students"),
]
VERBS = [
    ("sees", "see", "saw", "will see"),
    ("likes", "like", "liked", "will like"),
    ("helps", "help", "helped", "will help"),
    ("finds", "find", "found", "will find"),
    ("calls", "call", "called", "will call"),
    ("visits", "visit", "visited", "will visit"),
    ("meets", "meet", "met", "will meet"),
    ("watches", "watch", "watched", "will watch"),
]
OBJECTS = [
    "the river",
    "a red house",
    "the old tree",
    "the city",
    "a small boat",
    "the garden",
    "a blue car",
    "the market",
    "the school",
    "a quiet road",
]

# word pairs and number words of the semantics and reasoning datasets
NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen"
).split()
ANTONYMS = [
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("good", "bad"),
    ("up", "down"),
    ("open", "closed"),
    ("light", "dark"),
    ("high", "low"),
    ("early", "late"),
    ("full", "empty"),
    ("hard", "soft"),
    ("long", "short"),
    ("rich", "poor"),
    ("strong", "weak"),
    ("wet", "dry"),
    ("clean", "dirty"),
    ("loud", "quiet"),
    ("thick", "thin"),
    ("young", "old"),
    ("near", "far"),
    ("win", "lose"),
    ("buy", "sell"),
    ("push", "pull"),
    ("inside", "outside"),
    ("day", "night"),
    ("left", "right"),
    ("first", "last"),
    ("true", "false"),
    ("love", "hate"),
    ("begin", "end"),
    ("give", "take"),
]

# name, competence, phenomenon, probe task type, num_labels
DATASETS: List[Tuple[str, str, str, str, int]] = [
    ("mergelab-demo-agreement", "morphology", "subject-verb agreement", "SENTENCE", 2),
    ("mergelab-demo-tense", "morphology", "tense", "SENTENCE", 3),
    ("mergelab-demo-negation", "semantics", "negation", "SENTENCE", 2),
    ("mergelab-demo-antonym-pairs", "semantics", "word-pair relations", "SENTENCE_PAIR_CROSS", 2),
    ("mergelab-demo-subject-object", "syntax", "grammatical role", "SENTENCE_TOKENS", 2),
    ("mergelab-demo-coherence", "discourse", "sentence coherence", "SENTENCE_PAIR_BI", 2),
    ("mergelab-demo-contradiction", "reasoning", "contradiction", "SENTENCE_PAIR_CROSS", 2),
    ("mergelab-demo-sum", "reasoning", "numerical reasoning", "SENTENCE", 1),
]
SPLITS = (("train", 160), ("dev", 40), ("test", 80))


def _clause(rng, tense: int = 0, plural: bool = False, negated: bool = False) -> str:
    subj = rng.choice(SUBJECTS)[1 if plural else 0]
    verb = rng.choice(VERBS)
    obj = rng.choice(OBJECTS)
    if tense == 0:  # present
        v = verb[1] if plural else verb[0]
        if negated:
            v = ("do not " if plural else "does not ") + verb[1]
    elif tense == 1:  # past
        v = ("did not " + verb[1]) if negated else verb[2]
    else:  # future
        v = ("will not " + verb[1]) if negated else verb[3]
    return f"{subj} {v} {obj}"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _agreement(rng, i):
    plural = rng.random() < 0.5
    ok = i % 2 == 0
    subj = rng.choice(SUBJECTS)[1 if plural else 0]
    verb = rng.choice(VERBS)
    v = (verb[1] if plural else verb[0]) if ok else (verb[0] if plural else verb[1])
    return [_sentence(f"{subj} {v} {rng.choice(OBJECTS)}")], None, int(ok)


def _tense(rng, i):
    tense = i % 3
    return [_sentence(_clause(rng, tense=tense, plural=rng.random() < 0.5))], None, tense


def _negation(rng, i):
    neg = i % 2 == 1
    return [_sentence(_clause(rng, tense=rng.randrange(3), plural=rng.random() < 0.5, negated=neg))], None, int(neg)


def _antonym_pairs(rng, i):
    words = [w for pair in ANTONYMS for w in pair]
    x, y = ANTONYMS[rng.randrange(len(ANTONYMS))]
    if i % 2 == 0:
        return [x, y] if rng.random() < 0.5 else [y, x], None, 1
    other = rng.choice([w for w in words if w not in (x, y)])
    return [x, other], None, 0


def _subject_object(rng, i):
    subj = rng.choice(SUBJECTS)[0]
    verb = rng.choice(VERBS)[0]
    obj = rng.choice(OBJECTS)
    sentence = _sentence(f"{subj} {verb} {obj}")
    role = i % 2  # 0: the subject's noun, 1: the object's noun
    noun = (subj if role == 0 else obj).split()[-1]
    start = sentence.index(noun) if role == 0 else sentence.rindex(noun)
    return [(noun, 0, start, start + len(noun))], [sentence], role


def _coherence(rng, i):
    """Two sentences about the same subject (coherent, 1) or about two (0)."""
    subj = rng.choice(SUBJECTS)[0]
    other = subj if i % 2 == 0 else rng.choice([s for s, _ in SUBJECTS if s != subj])
    first = _sentence(f"{subj} {rng.choice(VERBS)[0]} {rng.choice(OBJECTS)}")
    second = _sentence(f"then {other} {rng.choice(VERBS)[0]} {rng.choice(OBJECTS)}")
    return [first, second], None, int(i % 2 == 0)


def _contradiction(rng, i):
    tense = rng.randrange(3)
    plural = rng.random() < 0.5
    state = rng.getstate()
    premise = _clause(rng, tense=tense, plural=plural)
    rng.setstate(state)
    contra = i % 2 == 1
    hypothesis = _clause(rng, tense=tense, plural=plural, negated=contra)
    return [_sentence(premise), _sentence(hypothesis)], None, int(contra)


def _sum(rng, i):
    a, b = rng.randrange(10), rng.randrange(10)
    return [f"{NUMBERS[a].capitalize()} plus {NUMBERS[b]}."], None, float(a + b)


MAKERS: Dict[str, Callable] = {
    "mergelab-demo-agreement": _agreement,
    "mergelab-demo-tense": _tense,
    "mergelab-demo-negation": _negation,
    "mergelab-demo-antonym-pairs": _antonym_pairs,
    "mergelab-demo-subject-object": _subject_object,
    "mergelab-demo-coherence": _coherence,
    "mergelab-demo-contradiction": _contradiction,
    "mergelab-demo-sum": _sum,
}


def dataset_files(name: str, probe_task_type: str, num_labels: int, seed: int = 0) -> Dict[str, str]:
    """file name -> text of one dataset folder."""
    rng = random.Random(f"{seed}-{name}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "inputs", "context", "label", "set-0"])
    i = 0
    for split, n in SPLITS:
        for _ in range(n):
            inputs, context, label = MAKERS[name](rng, i)
            writer.writerow([i, repr(list(inputs)), "" if context is None else repr(context), label, split])
            i += 1
    config = {
        "probe_name": name,
        "probe_task_type": probe_task_type,
        "control_task_type": "NONE",
        "num_labels": num_labels,
        "probes_samples_path": "samples.csv",
    }
    return {"config-none.yaml": yaml.safe_dump(config, sort_keys=False), "samples.csv": buf.getvalue()}


def write_demo_set(root: Path, seed: int = 0) -> List[str]:
    """Write every demo dataset below root (root = <data root>/demo)."""
    names = []
    for name, _, _, ptt, k in DATASETS:
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for fname, text in dataset_files(name, ptt, k, seed).items():
            (folder / fname).write_text(text, encoding="utf-8")
        names.append(name)
    return names
