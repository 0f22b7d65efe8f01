"""A unit of work: one open transaction and the events produced but not yet written.

Everything a batch of jobs records up to its end commits together, so a job that fails
midway leaves no half-written timeline and its retry starts clean; one transaction per
batch also spares the per-statement round trips that dominated the worker's cost. A
live step commits its intent first (durably) and holds no connection while it acts;
see ``pause``/``resume``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remediator.store import timeline
from remediator.store.db import commit_on_loop, durable_transaction
from remediator.store.timeline import NewEvent


class WorkUnit:
    def __init__(
        self, engine: AsyncEngine, clock: Callable[[], datetime], *, durable: bool
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._durable = durable
        self._pending: list[tuple[str, NewEvent]] = []
        self.written: list[tuple[str, NewEvent]] = []  # (incident id, event), committed
        self._stack: AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is paused")
        return self._conn

    def add(self, incident_id: str, *events: NewEvent) -> None:
        self._pending.extend((incident_id, event) for event in events)

    async def __aenter__(self) -> WorkUnit:
        await self.resume()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.pause()
        elif self._stack is not None:
            stack, self._stack, self._conn = self._stack, None, None
            self._pending.clear()
            await stack.__aexit__(exc_type, exc, tb)  # rolls the transaction back

    async def pause(self, *, before_action: bool = False) -> None:
        """Write pending events, commit, and give the connection back. ``before_action``:
        the commit is an intent's, the last thing before a cluster write."""
        if self._stack is None:
            return
        await timeline.append(self.conn, self._pending, self._clock())
        if before_action:
            await commit_on_loop(self.conn)
        stack, self._stack, self._conn = self._stack, None, None
        await stack.aclose()
        self.written.extend(self._pending)
        self._pending.clear()

    async def resume(self) -> None:
        """Open a new transaction (durable when the work may act for real)."""
        stack = AsyncExitStack()
        opener = durable_transaction(self._engine) if self._durable else self._engine.begin()
        self._conn = await stack.enter_async_context(opener)
        self._stack = stack
