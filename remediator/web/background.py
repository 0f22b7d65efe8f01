"""Work a request starts and finishes after its answer (Slack wants one in 3 seconds)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace: float) -> None:
        """Let started work finish on shutdown, within ``grace`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
