"""Engine set-up, durable transactions and schema migration.

SQLite is the embedded default for one replica. All access goes through one
connection there, so concurrent coroutines queue instead of meeting SQLITE_BUSY, and
WAL keeps readers from blocking the writer's fsync.

Only commits that promise something to the outside world must survive power loss:
acknowledging a webhook, and recording intent before a live action. Those use
``durable_transaction`` (SQLite ``synchronous=FULL``: an fsync each, shared by a whole
group commit). Timeline bookkeeping commits at ``NORMAL``, which survives a crash of
the process and costs no fsync; PostgreSQL commits are always durable.
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from remediator.errors import ConfigError
from remediator.store.sqlite import COMMIT_ON_LOOP, LoopDBAPI, LoopEngine, connector

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATE_LOCK = 727_000  # pg advisory lock ids: migrations
GUARD_LOCK = 727_001  # and guard decisions
_DURABLE = "remediator_durable"  # connection option: this transaction is durable
_LEVEL = "remediator_synchronous"  # pooled connection info: the level it is at now


def create_engine(url: str, *, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    """An async engine configured for the backend the URL names.

    ``sqlite_synchronous`` is the level of durable transactions; see the module docstring.
    """
    if url.startswith("sqlite"):
        # Statements on the loop's thread with no greenlet; commits on aiosqlite's.
        engine: AsyncEngine = LoopEngine(
            create_async_engine(
                url,
                pool_size=1,
                max_overflow=0,
                pool_timeout=30,
                async_creator=connector(url),
                module=LoopDBAPI(),
            ).sync_engine
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
            record.info[_LEVEL] = "NORMAL"

        @event.listens_for(engine.sync_engine, "begin")
        def _level(conn: Connection) -> None:
            # Runs before SQLite's BEGIN, where the level may still change. Switched only
            # when it differs: a live worker's transactions are all durable, and setting
            # it around each cost two PRAGMAs and two commits on an alert's path.
            want = sqlite_synchronous if conn.get_execution_options().get(_DURABLE) else "NORMAL"
            if conn.info.get(_LEVEL) != want:
                conn.exec_driver_sql(f"PRAGMA synchronous={want}")
                conn.info[_LEVEL] = want

        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=10)
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """Swap a pooled PostgreSQL connection whose socket the server has closed.

    asyncpg learns of a closed socket as soon as the loop reads its EOF, so after a
    server restart every idle connection already knows. Asking it costs nothing, where
    SQLAlchemy's ``pool_pre_ping`` spent three round trips (BEGIN, a ping, ROLLBACK) on
    every transaction. A connection that dies while checked out fails that transaction
    once, and is then invalidated; the webhook answers 503 and Alertmanager retries.
    """
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")


@asynccontextmanager
async def durable_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction whose commit survives power loss, not only a process crash."""
    async with engine.connect() as conn:
        durable = await conn.execution_options(**{_DURABLE: True})
        async with durable.begin():
            yield durable


async def commit_on_loop(conn: AsyncConnection) -> None:
    """On SQLite, have the commit of ``conn``'s transaction run on the event loop's
    thread, not aiosqlite's: for a commit that is all that stands between an alert and
    its action (see ``store/sqlite.py``)."""
    marked = await conn.execution_options(**{COMMIT_ON_LOOP: True})
    assert marked is conn  # SQLAlchemy 2 sets options on the connection itself


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent; replicas take turns)."""

    def upgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
        await conn.run_sync(upgrade)


def claim_sqlite(url: str) -> IO[bytes] | None:
    """Hold an exclusive lock beside a SQLite store for the life of the process.

    SQLite serves one replica; a second server on the same file would claim the same work
    with no row locks to stop it. Returns the open lock file (close it to release), or
    None for other backends; raises ConfigError when another process holds it.
    """
    path = url.split(":///", 1)[1] if url.startswith("sqlite") else ""
    if not path or path == ":memory:":
        return None
    handle = Path(f"{path}.lock").open("ab")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"store.url: another remediator is using {path}; SQLite serves one replica, "
            "use postgresql+asyncpg:// for several"
        ) from None
    return handle


async def ping(engine: AsyncEngine) -> None:
    """Raise if the store cannot answer a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
