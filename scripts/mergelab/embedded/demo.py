"""Small Llama-architecture models built offline, for the embedded default and the tests.

A byte-level BPE tokenizer is trained on the demo corpus (so it is a real
`tokenizers` tokenizer with offsets, BOS, EOS, a model max length), then:

- size "demo" (the `demo_models` rule): a base language model is trained on the
  generic text of `mergelab.embedded.demo_tasks`, and two experts are fine-tuned from it,
  "math" on four-digit sums and "words" on the kinds of nouns (see demo_tasks
  for what each skill is and which items are held out). About a minute on two
  CPU cores.
- the other sizes (the tests' "tiny" models, the benchmarks' large ones): the
  base is a seeded random initialisation and "math"/"words" are the base plus a
  small seeded perturbation -- task vectors with the right shapes, no skills.

Everything is deterministic: the same seed (and torch's thread count) gives
byte-identical files. This module is the one place that decides what the demo
models are; the `demo_models` rule only calls :func:`build_demo_models`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from mergelab.embedded import demo_tasks as dt
from mergelab.embedded.demo_tasks import arithmetic_text, category_text, corpus

DEMO_NAMES = ("base", "math", "words")

SIZES = {
    # hidden, layers, heads, kv heads, intermediate
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64
    ),
    "demo": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=176
    ),
    # ~58M parameters: the size the merge benchmark asks for
    "bench": dict(
        hidden_size=768, num_hidden_layers=8, num_attention_heads=12, num_key_value_heads=4, intermediate_size=2304
    ),
    # ~1B parameters: bench/gpu_check.py on a GPU machine
    "1b": dict(
        hidden_size=2048, num_hidden_layers=20, num_attention_heads=16, num_key_value_heads=8, intermediate_size=5632
    ),
    # ~200M parameters: the merge benchmark where the workflow's fixed start-up cost is amortised
    "bench-large": dict(
        hidden_size=1536, num_hidden_layers=8, num_attention_heads=12, num_key_value_heads=4, intermediate_size=4096
    ),
}


@dataclass(frozen=True)
class Schedule:
    """Optimizer steps (batches of 32 blocks of 64 tokens) and peak learning rates of the demo training."""

    base_steps: int = 600
    base_lr: float = 3e-3
    math_steps: int = 800
    math_lr: float = 1.5e-3
    words_steps: int = 300
    words_lr: float = 2e-3
    replay: float = 0.33  # generic documents added to an expert's data, per skill document


TRAINED = {"demo": Schedule()}  # sizes whose models are trained; the others are random


def tokenizer_corpus(seed: int) -> List[str]:
    """The tokenizer's training text: the generic corpus plus the skills' question forms."""
    return corpus(4000, seed) + [arithmetic_text(1234, 5, 1239)] * 20 + [category_text("horse", "animal")] * 20


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, model_max_length: int = 512):
    """A byte-level BPE tokenizer with <s>/</s>/<unk>, adding <s> like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # digits one by one, as Llama's tokenizers do: sums are then digit-wise patterns
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
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
            processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]),
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


def _blocks(tokenizer, docs: List[str], length: int = 64):
    """The documents (each <s> ... </s>) concatenated and cut into blocks of `length` tokens."""
    import torch

    ids: List[int] = []
    for enc in tokenizer(docs)["input_ids"]:
        ids += enc + [tokenizer.eos_token_id]
    n = len(ids) // length
    return torch.tensor(ids[: n * length]).view(n, length)


def train_lm(
    model,
    blocks,
    steps: int,
    lr: float,
    seed: int,
    batch: int = 32,
    log: Optional[logging.Logger] = None,
    label: str = "model",
):
    """Causal-LM training: AdamW, 10% linear warm-up then cosine decay to 5%, seeded batches."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 10)
    model.train()
    for step in range(steps):
        factor = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr * max(factor, 0.05)
        x = blocks[torch.randint(0, len(blocks), (batch,), generator=gen)]
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and (step % 100 == 0 or step == steps - 1):
            log.info("%s: step %d/%d, loss %.3f", label, step + 1, steps, loss.item())
    model.eval()
    return model


def train_demo_models(tokenizer, config, seed: int, schedule: Schedule, log: Optional[logging.Logger] = None) -> Dict:
    """The base trained on generic text, and the two experts fine-tuned from it (with 25% generic replay)."""
    import copy

    log = log or logging.getLogger("mergelab.demo")
    log.info(
        "training the base (%d steps), then the math and words experts (%d, %d steps)",
        schedule.base_steps,
        schedule.math_steps,
        schedule.words_steps,
    )
    t0 = time.time()
    base = init_model(config, seed)
    blocks = _blocks(tokenizer, dt.corpus(6000, seed))
    train_lm(base, blocks, schedule.base_steps, schedule.base_lr, seed, log=log, label="base")
    log.info("base trained in %.1f s", time.time() - t0)
    skills = {
        "math": (dt.arithmetic_training(4000, seed + 1), schedule.math_steps, schedule.math_lr),
        "words": (dt.category_training() * 40, schedule.words_steps, schedule.words_lr),
    }
    models = {"base": base}
    for i, (name, (docs, steps, lr)) in enumerate(skills.items()):
        t1 = time.time()
        docs = docs + dt.corpus(int(len(docs) * schedule.replay), seed + 10 + i)
        random.Random(seed + 20 + i).shuffle(docs)
        blocks = _blocks(tokenizer, docs)
        models[name] = train_lm(copy.deepcopy(base), blocks, steps, lr, seed + 1 + i, log=log, label=f"{name} expert")
        log.info("%s expert trained in %.1f s", name, time.time() - t1)
    return models


def build_demo_models(
    out_dirs: Dict[str, Path],
    seed: int = 0,
    size: str = "demo",
    schedule: Optional[Schedule] = None,
    log: Optional[logging.Logger] = None,
) -> None:
    """Write the base and the experts to out_dirs[name] (names from DEMO_NAMES).

    Sizes in TRAINED (or any size given a schedule) are trained; the others are random variants.
    """
    unknown = set(out_dirs) - set(DEMO_NAMES)
    if unknown:
        raise ValueError(f"unknown demo models: {', '.join(sorted(unknown))}")
    tokenizer = train_tokenizer(tokenizer_corpus(seed))
    config = llama_config(tokenizer, size)
    schedule = schedule or TRAINED.get(size)
    if schedule is not None:
        models = train_demo_models(tokenizer, config, seed, schedule, log)
    else:
        base = init_model(config, seed)
        models = {
            name: base if name == "base" else perturbed(base, seed=seed * 1000 + i) for i, name in enumerate(DEMO_NAMES)
        }
    for name in DEMO_NAMES:
        if name in out_dirs:
            save(models[name], tokenizer, out_dirs[name])
