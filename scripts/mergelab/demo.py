"""Small Llama-architecture models built offline, for the embedded default and the tests.

A byte-level BPE tokenizer is trained on a synthetic English corpus (so it is a
real `tokenizers` tokenizer with offsets, BOS, EOS, a model max length), then a
Llama model is initialised from a fixed seed. The variants are the base plus a
small seeded perturbation, so their task vectors are small and distinct, as
fine-tunes of one base are. Everything is deterministic: the same seed gives
byte-identical files.

This module is the one place that decides what the demo models are; the
`demo_models` rule only calls :func:`build_demo_models`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, Iterable, List

DEMO_NAMES = ("base", "alpha", "beta")

SIZES = {
    # hidden, layers, heads, kv heads, intermediate
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64),
    "demo": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=176),
    # ~58M parameters: the size the merge benchmark asks for
    "bench": dict(hidden_size=768, num_hidden_layers=8, num_attention_heads=12, num_key_value_heads=4, intermediate_size=2304),
    # ~200M parameters: the merge benchmark where the workflow's fixed start-up cost is amortised
    "bench-large": dict(hidden_size=1536, num_hidden_layers=8, num_attention_heads=12, num_key_value_heads=4,
                        intermediate_size=4096),
}

_SUBJECTS = "the cat|the dog|a child|the teacher|my friend|the farmer|a bird|the doctor|our neighbour|the student".split("|")
_VERBS = "sees|likes|helps|follows|finds|calls|watches|visits|meets|thanks".split("|")
_OBJECTS = "the river|a red house|the old tree|the city|a small boat|the garden|a blue car|the market|the school|a quiet road".split("|")
_ADVERBS = "today|slowly|again|every morning|at night|with care|in the rain|before lunch".split("|")
_EXTRA = "plus minus equals is not and or but because what the opposite of answer question".split()


def synthetic_corpus(n: int = 4000, seed: int = 0) -> List[str]:
    """Deterministic simple English sentences (the tokenizer's training text)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.5:
            s += f" {rng.choice(_ADVERBS)}"
        if rng.random() < 0.3:
            s += " " + " ".join(rng.choice(_EXTRA) for _ in range(rng.randint(1, 4)))
        out.append(s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?"]))
    # every word of the demo skills, so the tokenizer knows them
    from mergelab.demo_tasks import ANTONYMS, NUMBERS

    out.extend(_EXTRA + list(NUMBERS) + [w for pair in ANTONYMS for w in pair])
    return out


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, model_max_length: int = 512):
    """A byte-level BPE tokenizer with <s>/</s>/<unk>, adding <s> like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=True),
            processors.TemplateProcessing(
                single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
            ),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )


def llama_config(tokenizer, size: str = "demo", max_positions: int = 512):
    from transformers import LlamaConfig

    if size not in SIZES:
        raise ValueError(f"unknown demo model size {size!r}; known: {', '.join(SIZES)}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        **SIZES[size],
    )


def init_model(config, seed: int):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def perturbed(model, seed: int, scale: float = 0.05):
    """A copy of model with every tensor moved by scale * std * N(0, 1) (seeded)."""
    import copy

    import torch

    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(out.named_parameters()):
            std = p.detach().float().std().item() if p.numel() > 1 else 1.0
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            p.add_((noise * scale * (std or 1.0)).to(p.dtype))
    return out


def save(model, tokenizer, path: Path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)


def build_demo_models(out_dirs: Dict[str, Path], seed: int = 0, size: str = "demo") -> None:
    """Write the base and its variants to out_dirs[name] (names from DEMO_NAMES)."""
    unknown = set(out_dirs) - set(DEMO_NAMES)
    if unknown:
        raise ValueError(f"unknown demo models: {', '.join(sorted(unknown))}")
    tokenizer = train_tokenizer(synthetic_corpus(seed=seed))
    base = init_model(llama_config(tokenizer, size), seed)
    for i, name in enumerate(DEMO_NAMES):
        if name not in out_dirs:
            continue
        model = base if name == "base" else perturbed(base, seed=seed * 1000 + i)
        save(model, tokenizer, out_dirs[name])
