"""SQLite through aiosqlite, minus the thread hop on every statement.

aiosqlite runs each call (execute, fetch, even ``cursor()``) on its own thread and wakes
the event loop for the answer. On a small VM one such hop costs 0.5 to 1 ms, and
SQLAlchemy makes three or four per statement, while SQLite answers our queries in
microseconds: the hops were most of the time from an alert to its first action.

Here statements run on the event loop's thread. A commit still goes to aiosqlite's
thread, because a durable commit waits for an fsync that must not stall the loop, and
any commit may run a WAL checkpoint. This is safe only because the engine holds exactly
one connection (see ``db.create_engine``): no statement here can wait for a lock held
by another connection of this process, which would block the loop that must release it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url


class LoopConnection(aiosqlite.Connection):
    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        if conn is None or not self._running or (fn == conn.commit and conn.in_transaction):
            # aiosqlite leaves its queueing method unannotated.
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        return fn(*args, **kwargs)


def connector(url: str) -> Callable[[], LoopConnection]:
    """An ``async_creator`` for SQLAlchemy: the connect arguments its own aiosqlite
    dialect would use, on a ``LoopConnection``."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))

    def create() -> LoopConnection:
        return LoopConnection(partial(sqlite3.connect, *args, **kwargs), iter_chunk_size=64)

    return create
