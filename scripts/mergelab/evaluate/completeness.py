"""Whether an lm-eval results dict is complete: every task evaluated as many documents as it has
and `limit` asks. The harness job checks it before writing, organize before tabulating.
Standard library only: the jobs of every env import it."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional


def expected_samples(original: int, limit) -> int:
    """The documents lm-eval evaluates of a task with ``original`` documents under ``limit``
    (lm_eval.evaluator_utils.get_sample_size: a fraction below 1 rounds up)."""
    if limit is None:
        return original
    n = int(math.ceil(original * limit)) if limit < 1.0 else int(limit)
    return min(n, original)


def partial_result(res: Dict[str, Any]) -> Optional[str]:
    """None when every task of a results dict evaluated as many documents as it has and
    ``limit`` asks (n-samples effective); else one phrase naming the first that did not."""
    limit = ((res.get("mergelab") or {}).get("settings") or {}).get("limit", (res.get("config") or {}).get("limit"))
    for task, n in sorted((res.get("n-samples") or {}).items()):
        if not isinstance(n, dict) or "effective" not in n or "original" not in n:
            continue
        want = expected_samples(int(n["original"]), limit)
        if int(n["effective"]) != want:
            return (
                f"partial result: task {task} evaluated {n['effective']} of the {want} documents "
                f"it has and limit {limit} asks for (n-samples)"
            )
    return None
