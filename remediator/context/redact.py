"""Masks secrets in captured text before it is stored.

Log lines are the one place remediator stores text it did not write; whatever a program
printed (a token, a password in a URL, a bearer header) must never reach the timeline,
the API or Slack. A pattern's named group ``keep`` survives, so ``password=[REDACTED]``
still says what was there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"
DEFAULTS = (
    r"(?i)(?P<keep>authorization:\s*)(?:bearer|basic)\s+\S+",
    r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}",
    r"(?i)(?P<keep>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)"
    r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+",
    r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"(?P<keep>://[^/\s:@]+:)[^/\s@]+(?=@)",
)


class Redactor:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._patterns = [re.compile(p) for p in (*DEFAULTS, *extra)]

    def __call__(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(_masked, text)
        return text


def _masked(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep") or ""
    return f"{keep}{MASK}"
