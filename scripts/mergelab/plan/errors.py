"""The one error type of the plan, and the did-you-mean every message shares."""

from __future__ import annotations

import difflib
from typing import Iterable, List


class ConfigError(Exception):
    """A problem in the experiment config; the message is one line for the user,
    naming the file and the key, e.g. ``config/experiment.yaml: merges[1].methods[0]: ...``."""


def close_matches(word: str, options: Iterable[str], n: int = 3) -> List[str]:
    return difflib.get_close_matches(str(word), [str(o) for o in options], n=n, cutoff=0.6)


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """'; did you mean a, b?' when ``word`` is close to some of ``options``, else ''."""
    near = close_matches(word, options)
    return f"; did you mean {', '.join(near)}?" if near else ""
