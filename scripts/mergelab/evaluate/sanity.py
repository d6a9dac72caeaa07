"""The sanity check of a model before its evaluations (issue 17): cheap, one job per model.

A merge can come out broken - a NaN or Inf tensor, an embedding matrix smaller than
its tokenizer, a lost chat template or special token, a collapsed model whose
perplexity explodes - and then costs hours of lm-eval and Holmes jobs for nothing.
``check_model`` finds that in about the time of one forward pass:

1. every tensor finite, streamed tensor by tensor from the safetensors files
   (one tensor in memory at a time);
2. the embedding and LM-head rows at least the tokenizer's length;
3. config and tokenizer load; the special tokens and the chat template the parents
   had are still there;
4. a forward pass on PROMPTS gives finite logits; greedy generation returns tokens;
5. the perplexity on PPL_TEXT is at most ``max_ppl_ratio`` times the worst parent's.

The parents are checked by the same job (their checks record what the merges'
checks compare against: perplexity, special tokens, chat template), once per
parent, so no merge's check loads a parent. The result is the JSON of
``results/checks/{model}.json`` (``write_check``): ``status`` ok or broken,
``reasons`` (one line each), and what was measured.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from mergelab.runtime.jobs import atomic_file

log = logging.getLogger("mergelab.sanity")

PROMPTS = [
    "The capital of France is",
    "def add(a, b):\n    return",
    "Once upon a time, there was a",
]
PPL_TEXT = (
    "The quick brown fox jumps over the lazy dog. Two plus two is four, and four plus four is eight. "
    "Water boils at one hundred degrees Celsius at sea level. The sun rises in the east and sets in the west."
)
GENERATE_TOKENS = 8
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")
# names of the input-embedding and LM-head weights in the architectures mergekit merges
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
HEAD_SUFFIXES = ("lm_head.weight", "embed_out.weight")


def weight_files(model_dir: str) -> List[Path]:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no safetensors weights")
    return files


def scan_tensors(model_dir: str) -> Dict[str, Any]:
    """Stream every tensor once: the names of the non-finite ones, the rows of the embedding
    and LM-head matrices, and the tensor count. One tensor in memory at a time."""
    import torch
    from safetensors import safe_open

    nonfinite: List[str] = []
    rows: Dict[str, int] = {}
    count = 0
    for f in weight_files(model_dir):
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                t = fh.get_tensor(name)
                count += 1
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    nonfinite.append(name)
                if name.endswith(EMBEDDING_SUFFIXES) or name.endswith(HEAD_SUFFIXES):
                    rows[name] = int(t.shape[0])
                del t
    return {"tensors": count, "nonfinite": nonfinite, "embedding_rows": rows}


def read_reference(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def check_model(
    model_dir: str,
    parents: Optional[List[Dict[str, Any]]] = None,
    max_ppl_ratio: float = 10.0,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> Dict[str, Any]:
    """The check of the model in ``model_dir`` against its parents' checks (``parents``: their
    JSONs; none for a parent). Returns the JSON of its check; never raises for a broken model.
    ``trust_remote_code``: load the model's own code, as the harness does (its harness setting)."""
    parents = parents or []
    reasons: List[str] = []
    out: Dict[str, Any] = {"checks": {}}
    checks = out["checks"]

    scan = scan_tensors(model_dir)
    checks["tensors"] = scan["tensors"]
    checks["embedding_rows"] = scan["embedding_rows"]
    if scan["nonfinite"]:
        shown = ", ".join(scan["nonfinite"][:3]) + (" ..." if len(scan["nonfinite"]) > 3 else "")
        reasons.append(f"non-finite weights (NaN/Inf) in {len(scan['nonfinite'])} tensor(s): {shown}")

    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - any failure is the reason
        reasons.append(f"config does not load: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        config = None
    try:
        tok = transformers.AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        reasons.append(f"tokenizer does not load: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        tok = None

    if tok is not None:
        checks["tokenizer_length"] = len(tok)
        checks["special_tokens"] = {k: getattr(tok, k, None) for k in SPECIAL_TOKENS}
        checks["chat_template"] = bool(getattr(tok, "chat_template", None))
        for name, n in sorted(scan["embedding_rows"].items()):
            if n < len(tok):
                reasons.append(f"embedding too small: {name} has {n} rows, the tokenizer {len(tok)} tokens")
        for p in parents:
            pc = p.get("checks", {})
            for k, v in (pc.get("special_tokens") or {}).items():
                if v is not None and checks["special_tokens"].get(k) is None:
                    reasons.append(f"special token lost: {k} ({v!r} in parent {p.get('model')})")
            if pc.get("chat_template") and not checks["chat_template"]:
                reasons.append(f"chat template lost (parent {p.get('model')} has one)")
        reasons = list(dict.fromkeys(reasons))

    structural = bool(reasons)
    if structural:  # the weights or files are broken already: loading the model tells nothing more
        checks["forward"] = "not run"
    else:
        reasons += _model_checks(model_dir, tok, config, parents, max_ppl_ratio, device, out, trust_remote_code)
    out["status"] = "broken" if reasons else "ok"
    out["reasons"] = reasons
    return out


def _model_checks(model_dir, tok, config, parents, max_ppl_ratio, device, out, trust_remote_code=False) -> List[str]:
    import torch
    import transformers

    reasons: List[str] = []
    checks = out["checks"]
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            model_dir, dtype="auto", trust_remote_code=trust_remote_code
        )
        model = model.to(device).eval()
    except Exception as e:  # noqa: BLE001
        return [f"model does not load: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"]
    with torch.no_grad():
        finite = True
        for prompt in PROMPTS:
            ids = tok(prompt, return_tensors="pt").to(device)
            logits = model(**ids).logits
            if not bool(torch.isfinite(logits).all()):
                finite = False
        checks["forward"] = "finite" if finite else "non-finite"
        if not finite:
            reasons.append("forward pass gives non-finite logits")
        ids = tok(PROMPTS[0], return_tensors="pt").to(device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        gen = model.generate(**ids, max_new_tokens=GENERATE_TOKENS, do_sample=False, pad_token_id=pad)
        new = int(gen.shape[1] - ids["input_ids"].shape[1])
        checks["generated_tokens"] = new
        if new < 1:
            reasons.append("greedy generation returns no token")
        enc = tok(PPL_TEXT, return_tensors="pt").to(device)
        loss = model(**enc, labels=enc["input_ids"]).loss.float().item()
    ppl = math.exp(loss) if math.isfinite(loss) and loss < 700 else math.inf
    out["perplexity"] = ppl if math.isfinite(ppl) else None
    parent_ppl = [p["perplexity"] for p in parents if p.get("perplexity") is not None]
    if not math.isfinite(ppl):
        reasons.append("perplexity is not finite")
    elif parent_ppl:
        worst = max(parent_ppl)
        out["parents_worst_perplexity"] = worst
        if ppl > max_ppl_ratio * worst:
            reasons.append(f"perplexity exploded: {ppl:.4g} > {max_ppl_ratio:g} x the worst parent's {worst:.4g}")
    return reasons


def broken_summary(check: Dict[str, Any]) -> str:
    """One line: the first reason, and how many more."""
    reasons = check.get("reasons") or []
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return (reasons[0] if reasons else "broken") + more


def write_check(result: Dict[str, Any], path: str) -> None:
    with atomic_file(path) as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")


def read_check(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The check JSON at ``path``, or None (no check, or no file)."""
    if not path or not Path(path).is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def skipped_by(check_path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The check of a broken merge whose evaluations are skipped (on_fail: skip), else None."""
    check = read_check(check_path)
    if check and check.get("status") == "broken" and check.get("on_fail") == "skip":
        return check
    return None
