"""Identifiers that sort by creation time, so paging by id is paging by age."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """21 hex characters: milliseconds since the epoch, then 40 random bits."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(5)}"
