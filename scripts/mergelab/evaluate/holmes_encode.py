"""Encode probing inputs with a model: one forward pass per unique text, last hidden layer.

Pooling per probe task type (see ../shared/reference/holmes.md):
- SENTENCE: mean over all non-pad tokens of the sentence (special tokens included);
- SENTENCE_PAIR_BI: each sentence mean-pooled alone, concatenated [u; v];
- SENTENCE_PAIR_CROSS: "s1 {sep} s2" encoded once and mean-pooled (sep = the tokenizer's
  sep token, or "");
- SENTENCE_TOKENS / SENTENCE_PAIR_TOKENS_BI: per input element, the mean of the sub-word
  vectors whose character span overlaps [start, end) of its context sentence; concatenated;
- SENTENCE_SPANS: the same, with the elements of one span id averaged together; spans
  concatenated in span-id order.

Every text is encoded once however many datasets use it. Real tokens are found from the
attention mask and positions are counted from the first real token, so left- and
right-padding tokenizers give the same features as encoding each text alone.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mergelab.evaluate.holmes_data import PROBE_TASK_TYPES, TOKEN_TYPES, ProbeDataset
from mergelab.runtime.jobs import JobError

log = logging.getLogger("mergelab.holmes")

Piece = Tuple[int, Optional[Tuple[int, int]]]  # (text id, char span or None for the whole text)
SENTENCE_TYPES = tuple(t for t in PROBE_TASK_TYPES if t not in TOKEN_TYPES)  # a vector per whole text


@dataclass
class Requests:
    """Unique texts, and the feature vectors wanted from them."""

    texts: List[str] = field(default_factory=list)
    pieces: List[Tuple[Piece, ...]] = field(default_factory=list)  # request id -> pieces averaged together
    _text_ids: Dict[str, int] = field(default_factory=dict)
    _req_ids: Dict[Tuple[Piece, ...], int] = field(default_factory=dict)

    def text(self, t: str) -> int:
        if t not in self._text_ids:
            self._text_ids[t] = len(self.texts)
            self.texts.append(t)
        return self._text_ids[t]

    def request(self, pieces: Sequence[Piece]) -> int:
        key = tuple(pieces)
        if key not in self._req_ids:
            self._req_ids[key] = len(self.pieces)
            self.pieces.append(key)
        return self._req_ids[key]


def row_requests(ds: ProbeDataset, req: Requests, sep: str) -> List[List[int]]:
    """For each row of ds (in order), the request ids whose vectors form its features."""
    out = []
    ptt = ds.probe_task_type
    for r in ds.rows:
        if ptt == "SENTENCE":
            ids = [req.request([(req.text(r.inputs[0]), None)])]
        elif ptt == "SENTENCE_PAIR_BI":
            ids = [req.request([(req.text(s), None)]) for s in r.inputs]
        elif ptt == "SENTENCE_PAIR_CROSS":
            ids = [req.request([(req.text(f"{r.inputs[0]} {sep} {r.inputs[1]}"), None)])]
        elif ptt == "SENTENCE_SPANS":
            spans: Dict = {}
            for el in r.inputs:
                spans.setdefault(el[4], []).append((req.text(r.context[el[1]]), (el[2], el[3])))
            ids = [req.request(spans[k]) for k in sorted(spans, key=str)]
        else:  # SENTENCE_TOKENS, SENTENCE_PAIR_TOKENS_BI
            ids = [req.request([(req.text(r.context[el[1]]), (el[2], el[3]))]) for el in r.inputs]
        out.append(ids)
    return out


def load_tokenizer(path: str, trust_remote_code: bool = False):
    """(tokenizer, max_length): the model's tokenizer (pad = eos when it has no pad token) and the
    model's limit, min(max_position_embeddings, model_max_length)."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    limits = [getattr(config, "max_position_embeddings", None), getattr(tok, "model_max_length", None)]
    limits = [x for x in limits if isinstance(x, int) and 0 < x < 10**8]
    return tok, (min(limits) if limits else 512)


def load_encoder(path: str, dtype: Optional[str], device: str, trust_remote_code: bool = False, gpus: int = 1):
    """(model, tokenizer, max_length): the model part whose last hidden state is probed."""
    tok, max_length = load_tokenizer(path, trust_remote_code)
    return load_model(path, dtype, device, trust_remote_code, gpus), tok, max_length


def load_model(path: str, dtype: Optional[str], device: str, trust_remote_code: bool = False, gpus: int = 1):
    """The model part whose last hidden state is probed (T5 family: the encoder).

    With several GPUs (a model too big for one) the layers are spread over them
    (device_map auto); the inputs then go to the device of the embeddings."""
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    torch_dtype = "auto" if dtype in (None, "auto") else getattr(torch, dtype)
    split = device.startswith("cuda") and gpus > 1
    kw = {"dtype": torch_dtype, **({"device_map": "auto"} if split else {})}
    if getattr(config, "is_encoder_decoder", False) and config.model_type in ("t5", "mt5", "umt5", "longt5"):
        from transformers import T5EncoderModel

        model = T5EncoderModel.from_pretrained(path, **kw)  # T5 family: the encoder
    else:
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, **kw)
    if not split:
        model.to(device)
    model.eval()
    return model


def check_tokens(tok, data: Sequence[ProbeDataset], rows: Sequence[List[List[int]]], req: Requests) -> None:
    """Stop with one line naming the dataset, the text and the tokenizer when the tokenizer turns
    a text into no token at all (an empty text, with a tokenizer that adds no special token):
    such a text has no vector to pool. One tokenization pass, before the model is loaded."""
    if not req.texts:
        return
    counts = [len(ids) for ids in tok(req.texts, add_special_tokens=True, verbose=False)["input_ids"]]
    if all(counts):
        return
    empty = {i for i, n in enumerate(counts) if n == 0}
    for ds, ds_rows in zip(data, rows):
        for request_ids in ds_rows:
            for rid in request_ids:
                for tid, _ in req.pieces[rid]:
                    if tid in empty:
                        text = req.texts[tid]
                        shown = repr(text if len(text) <= 60 else text[:57] + "...")
                        raise JobError(
                            f"dataset {ds.name!r}: the text {shown} is zero tokens for {type(tok).__name__}, "
                            f"so it has no features; remove or fix it in {ds.samples_path}"
                        )


def _accepts_position_ids(model) -> bool:
    try:
        return "position_ids" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def encode(model, tok, req: Requests, *, batch_size: int, max_length: int):
    """The vector of every request: a float32 tensor (n_requests, hidden), on the CPU."""
    import torch

    if not tok.is_fast and any(span is not None for pieces in req.pieces for _, span in pieces):
        raise ValueError("token-level probing needs a fast tokenizer (character offsets)")
    hidden = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.d_model
    n_req = len(req.pieces)
    sums = torch.zeros(n_req, hidden, dtype=torch.float64)
    counts = torch.zeros(n_req, dtype=torch.long)
    by_text: Dict[int, List[Tuple[int, Optional[Tuple[int, int]]]]] = {}
    for rid, pieces in enumerate(req.pieces):
        for tid, span in pieces:
            by_text.setdefault(tid, []).append((rid, span))
    order = sorted(range(len(req.texts)), key=lambda i: len(req.texts[i]))
    use_positions = _accepts_position_ids(model) and not getattr(model.config, "is_encoder_decoder", False)
    first = model.get_input_embeddings().weight.device  # the inputs' device, also when split over GPUs
    t0, truncated = time.time(), 0
    with torch.inference_mode():
        for b0 in range(0, len(order), batch_size):
            ids = order[b0 : b0 + batch_size]
            enc = tok(
                [req.texts[i] for i in ids],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
                return_offsets_mapping=tok.is_fast,
            )
            offsets = enc.pop("offset_mapping", None)
            enc = {k: v.to(first) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            mask = enc["attention_mask"]
            if use_positions:
                enc["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
            states = model(**enc).last_hidden_state.float().cpu()
            mask = mask.cpu().bool()
            for b, tid in enumerate(ids):
                real = mask[b].nonzero().squeeze(1)
                vecs = states[b, real].double()
                for rid, span in by_text.get(tid, ()):
                    if span is None:
                        sel = vecs
                    else:
                        start, end = span
                        off = offsets[b, real]
                        keep = (off[:, 0] < end) & (off[:, 1] > start) & (off[:, 1] > off[:, 0])
                        sel = vecs[keep]
                        if len(sel) == 0:
                            truncated += 1
                    sums[rid] += sel.sum(0)
                    counts[rid] += len(sel)
    if truncated:
        log.warning(
            "%d token span(s) had no tokens (beyond the model's %d-token limit?); their features are zero",
            truncated,
            max_length,
        )
    log.info("encoded %d unique texts in %.1f s", len(req.texts), time.time() - t0)
    return (sums / counts.clamp(min=1).unsqueeze(1)).float()


def features(ds: ProbeDataset, rows: List[List[int]], vectors) -> "torch.Tensor":  # noqa: F821
    """The feature matrix of ds: each row's request vectors concatenated."""
    import torch

    index = torch.tensor(rows, dtype=torch.long)  # (n, k): equal k per dataset (validated)
    return vectors[index].reshape(len(rows), -1)


def probe_features(ds: ProbeDataset, rows: List[List[int]], vectors, *, encoding: str, mode: str = "full"):
    """What the probes of ds get: features(); with mode "reference" (holmes.features), rounded to
    float16 where Holmes' own code stores them so - the sentence-level probe task types, and every
    type when the encoding is half. A value beyond float16's range becomes inf there, as in Holmes."""
    x = features(ds, rows, vectors)
    if mode == "reference" and (encoding != "full" or ds.probe_task_type in SENTENCE_TYPES):
        x = x.half().float()
        overflow = int((~x.isfinite()).sum())
        if overflow:
            log.warning("%s: %d feature value(s) beyond float16's range became inf", ds.name, overflow)
    return x
