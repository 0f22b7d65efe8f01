"""SQLite through aiosqlite, minus the thread hop and the greenlet on every statement.

aiosqlite runs each call (execute, fetch, even ``cursor()``) on its own thread and wakes
the event loop for the answer. On a small VM one such hop costs 0.5 to 1 ms, and
SQLAlchemy makes three or four per statement, while SQLite answers our queries in
microseconds: the hops were most of the time from an alert to its first action.

Here statements run on the event loop's thread, straight on the ``sqlite3`` cursor, and
``AsyncConnection.execute`` (and ``begin``) call SQLAlchemy's synchronous ``Connection``
directly: with nothing to await, the greenlet SQLAlchemy's async layer wraps around each
statement, and its adapter's awaits, were half of a statement's CPU (27 against 58 µs
for a primary-key SELECT in ``bench/sqlite_statements.py``). The statements, their
compilation and their type processing are still SQLAlchemy Core's.

A transaction's frame goes the same way: taking the pooled connection, BEGIN, a
rollback, and the return to the pool run synchronously, and closing a connection no
longer starts a task: a transaction around that SELECT cost 149 µs of CPU, now 79.
Only what has to wait awaits: a holder queued behind another for the one connection,
(re)opening it, and a commit that wrote something.

Such a commit goes to aiosqlite's thread, because a durable commit waits for an fsync
that should not stall the loop, and any commit may run a WAL checkpoint. The exception
is a transaction marked ``COMMIT_ON_LOOP``: an intent's, all that stands between an
alert and its cluster write. The hop to that thread and back (two wake-ups of a CPU that
may be idle, while the loop also shares the GIL with the context thread) cost the alert
more than the fsync's stall (now and then with a checkpoint) costs the loop, and actions
are rate-limited, so such stalls are few. Either way the commit runs just before
SQLAlchemy's own commit, which then takes its outcome, success or error, as if it had
made it (so a ``commit`` event listener would run after the fact; this store registers
none). All this is safe only because the engine holds exactly one connection (see
``db.create_engine``): no statement here can wait for a lock held by another connection
of this process, which would block the loop that must release it.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction
from sqlalchemy.pool import QueuePool
from sqlalchemy.util.concurrency import await_, in_greenlet

COMMIT_ON_LOOP = "remediator_commit_on_loop"  # execution option; see the module doc


class LoopConnection(aiosqlite.Connection):
    """Runs calls on the loop's thread, except a commit that wrote something and any
    call made while one is still on aiosqlite's thread: those queue there behind it, so
    calls reach SQLite in the order they were made. (A holder cancelled while its commit
    waits there rolls back next; run at once, that rollback would overtake the commit.)"""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int):
        super().__init__(connector, iter_chunk_size)
        self._sent = 0  # calls queued on aiosqlite's thread; counted on the loop
        self._done = 0  # of those, finished; counted on that thread, its only writer

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self.loop_ready
        if conn is not None and not (fn == conn.commit and conn.in_transaction):
            return fn(*args, **kwargs)
        if not self._running or self._connection is None:
            # aiosqlite raises "Connection closed"; its queueing method is unannotated.
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

        def call() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._done += 1

        self._sent += 1
        return await super()._execute(call)  # type: ignore[no-untyped-call]

    @property
    def loop_ready(self) -> sqlite3.Connection | None:
        """The ``sqlite3`` connection while calls may run on it from the loop: open, and
        nothing of this connection's still on aiosqlite's thread."""
        ready = self._running and self._sent == self._done
        return self._connection if ready else None


async def _nothing() -> None:
    return None


def _driver(adapted: object) -> sqlite3.Connection | None:
    conn = getattr(adapted, "_connection", None)
    return conn.loop_ready if isinstance(conn, LoopConnection) else None


class _LoopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor that runs its statement on the ``sqlite3`` cursor at once.

    Where SQLAlchemy's async layer calls it (inside its greenlet), it awaits a no-op
    first, because that layer insists that every statement awaited something. A closed
    connection falls back to aiosqlite's cursor, which raises what SQLAlchemy expects.
    """

    __slots__ = ()

    def _make_new_cursor(self, connection: Any) -> Any:
        driver = _driver(self._adapt_connection)
        return driver.cursor() if driver is not None else super()._make_new_cursor(connection)

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor if isinstance(cursor, sqlite3.Cursor) else super()._aenter_cursor(cursor)

    def _raw(self) -> sqlite3.Cursor | None:
        cursor: object = self._cursor
        return cursor if isinstance(cursor, sqlite3.Cursor) else None

    async def _async_soft_close(self) -> None:
        raw = self._raw()
        if raw is None:
            await super()._async_soft_close()
            return
        self._soft_closed_memoized = self._soft_closed_memoized.union(
            {"description": raw.description}
        )
        raw.close()

    def close(self) -> None:
        raw = self._raw()
        if raw is None:
            super().close()
            return
        self._rows.clear()
        raw.close()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        raw = self._raw()
        if raw is None:
            return super().execute(operation, parameters)

        def run() -> Any:
            result = raw.execute(operation, () if parameters is None else parameters)
            if raw.description:
                self._rows = collections.deque(raw.fetchall())
            return result

        return self._now(run)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        raw = self._raw()
        if raw is None:
            return super().executemany(operation, seq_of_parameters)
        return self._now(lambda: raw.executemany(operation, seq_of_parameters))

    def _now(self, run: Callable[[], Any]) -> Any:
        """``run`` at once, its errors raised as the adapter raises the driver's."""
        if in_greenlet():
            await_(_nothing())
        try:
            return run()
        except Exception as error:
            self._adapt_connection._handle_exception(error)


class _NeedsGreenlet(Exception):
    """Opening a connection awaits aiosqlite: only SQLAlchemy's greenlet path can."""


_COMMITTED = object()


class _LoopAdapted(AsyncAdapt_aiosqlite_connection):
    """Rolls back on the loop, and takes a commit already made by ``commit_now``."""

    __slots__ = ("_committed",)
    _cursor_cls = _LoopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._committed: object = None

    async def commit_now(self, *, on_loop: bool) -> None:
        """Commit what was written, on aiosqlite's thread unless ``on_loop``; the next
        ``commit`` reports how that went, inside SQLAlchemy's own commit, so it sees the
        same success or error."""
        driver = _driver(self)
        if driver is None or not driver.in_transaction:
            self._committed = _COMMITTED  # nothing written: nothing to wait for
            return
        try:
            if on_loop:
                driver.commit()
            else:
                await self._connection.commit()
        except Exception as error:
            self._committed = error
        else:
            self._committed = _COMMITTED

    def forget_commit(self) -> None:
        """Drop an outcome SQLAlchemy did not ask for, so no later commit takes it."""
        self._committed = None

    def commit(self) -> None:
        done, self._committed = self._committed, None
        if isinstance(done, Exception):
            self._handle_exception(done)
        if done is None:
            super().commit()  # SQLAlchemy's own path, in its greenlet

    def rollback(self) -> None:
        driver = _driver(self)
        if driver is None:
            super().rollback()
            return
        try:
            driver.rollback()  # discards pages; no fsync to keep off the loop
        except Exception as error:
            self._handle_exception(error)


class LoopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI shim, handing out loop cursors."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *args: Any, **kwargs: Any) -> _LoopAdapted:
        if not in_greenlet():
            raise _NeedsGreenlet
        create = kwargs.pop("async_creator_fn")
        return _LoopAdapted(self, await_(create(*args, **kwargs)))


def _on_loop(sync: Connection) -> _LoopAdapted | None:
    """``sync``'s connection if it may run statements here and now: open, and on a loop
    cursor."""
    if sync.closed or sync.invalidated:
        return None  # SQLAlchemy's own path raises, or reconnects, as upstream
    dbapi: object = sync.connection.dbapi_connection
    return dbapi if isinstance(dbapi, _LoopAdapted) and _driver(dbapi) is not None else None


class LoopAsyncConnection(AsyncConnection):
    """Checkout, ``execute`` (and so ``scalar``, ``scalars``), ``begin``,
    ``execution_options`` and return to the pool without a greenlet. What must wait
    (for the pooled connection while another holder has it, for a new connection, for
    a commit on aiosqlite's thread) still awaits, and only that."""

    async def start(self, is_ctxmanager: bool = False) -> AsyncConnection:
        engine = self._loop_engine()
        pool = self.sync_engine.pool
        free = isinstance(pool, QueuePool) and pool.checkedin() and not engine.waiting
        if self.sync_connection is None and free:
            try:
                sync = self.sync_engine.connect()
            except _NeedsGreenlet:
                pass  # the pooled connection has to be (re)opened: the pool's way
            else:
                self.sync_connection = self._assign_proxied(sync)
                return self
        engine.waiting += 1
        try:
            return await super().start(is_ctxmanager)
        finally:
            engine.waiting -= 1

    async def close(self) -> None:
        sync = self.sync_connection
        if sync is None or _on_loop(sync) is None:
            await super().close()
            return
        sync.close()  # a rollback, if anything, then back to the pool
        if self._loop_engine().waiting:
            # Let the first in line take it before this task can run on and take it
            # back: a webhook waiting to commit must not wait out a worker's batch.
            await asyncio.sleep(0)

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        sync = self.sync_connection
        if sync is not None and _on_loop(sync) is not None:
            await self.close()  # returned before its one await: no task to shield it
        else:
            await super().__aexit__(type_, value, traceback)

    def _loop_engine(self) -> LoopEngine:
        engine = self.engine
        assert isinstance(engine, LoopEngine)
        return engine

    async def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> CursorResult[Any]:
        sync = self._proxied
        if _on_loop(sync) is not None:
            result: CursorResult[Any] = sync.execute(
                statement, parameters, execution_options=execution_options
            )
        else:
            result = await super().execute(
                statement, parameters, execution_options=execution_options
            )
        return result

    async def execution_options(self, **opt: Any) -> AsyncConnection:
        self._proxied.execution_options(**opt)  # sets options; nothing to wait for
        return self

    def begin(self) -> AsyncTransaction:
        assert self._proxied
        return _LoopTransaction(self)


class _LoopTransaction(AsyncTransaction):
    __slots__ = ()

    async def start(self, is_ctxmanager: bool = False) -> AsyncTransaction:
        sync = self.connection._proxied
        if _on_loop(sync) is None:
            return await super().start(is_ctxmanager)
        # BEGIN itself is left to sqlite3; SQLAlchemy's "begin" hooks (the durability
        # level) run statements, which go straight to the loop cursor.
        self.sync_transaction = self._assign_proxied(sync.begin())
        if is_ctxmanager:
            self.sync_transaction.__enter__()
        return self

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        adapted = _on_loop(self.connection._proxied)
        if adapted is None:
            await super().__aexit__(type_, value, traceback)
            return
        if type_ is None and self._proxied.is_active:
            options = self.connection._proxied.get_execution_options()
            await adapted.commit_now(on_loop=bool(options.get(COMMIT_ON_LOOP)))
        try:
            self._proxied.__exit__(type_, value, traceback)
        finally:
            adapted.forget_commit()


class LoopEngine(AsyncEngine):
    """Hands out loop connections; counts the holders queued for its one connection."""

    __slots__ = ("waiting",)
    _connection_cls = LoopAsyncConnection

    def __init__(self, sync_engine: Engine) -> None:
        super().__init__(sync_engine)
        self.waiting = 0


def connector(url: str) -> Callable[[], LoopConnection]:
    """An ``async_creator`` for SQLAlchemy: the connect arguments its own aiosqlite
    dialect would use, on a ``LoopConnection``."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))

    def create() -> LoopConnection:
        return LoopConnection(partial(sqlite3.connect, *args, **kwargs), iter_chunk_size=64)

    return create
