"""Identifiers that sort by creation time, so paging by id is paging by age."""

from __future__ import annotations

import re
import secrets
import time

ID_PATTERN = re.compile(r"[0-9a-f]{21}")
_last_us = 0


def new_id() -> str:
    """21 hex characters: microseconds since the epoch, then 32 random bits.

    The time part never repeats or goes back within a process, so ids made in one burst
    (a group commit creates hundreds per millisecond) still sort in creation order.
    """
    global _last_us
    _last_us = max(time.time_ns() // 1000, _last_us + 1)
    return f"{_last_us:013x}{secrets.token_hex(4)}"
