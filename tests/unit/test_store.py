"""Store mechanics: migrations match the tables, durability levels, the work queue."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import aiosqlite
import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import TypeAdapter
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.util.concurrency import in_greenlet

from remediator.store import jobs
from remediator.store.db import (
    alembic_config,
    commit_on_loop,
    create_engine,
    durable_transaction,
    migrate,
)
from remediator.store.tables import UTCDateTime, incidents, metadata
from remediator.store.tables import jobs as jobs_table

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def _diff(conn):
    return compare_metadata(MigrationContext.configure(conn), metadata)


@pytest.mark.parametrize(
    ("value", "text_form"),
    [
        (datetime(2025, 5, 1, 10, 0, tzinfo=UTC), "2025-05-01 10:00:00.000000"),
        (datetime(2025, 5, 1, 10, 0, 0, 7, tzinfo=UTC), "2025-05-01 10:00:00.000007"),
        (
            datetime(2025, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            "2025-05-01 10:00:00.000000",
        ),
        # UTC as another tzinfo object: what pydantic makes of RFC 3339's "Z"
        (
            TypeAdapter(datetime).validate_json('"2025-05-01T10:00:00Z"'),
            "2025-05-01 10:00:00.000000",
        ),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01 00:00:00.000000"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31 23:59:59.999999"),
    ],
)
def test_timestamps_are_bound_as_utc_fixed_width_text_on_sqlite(value, text_form):
    """Text order must be time order on SQLite; PostgreSQL gets the aware UTC time."""
    column = UTCDateTime()
    assert column.process_bind_param(value, sqlite.dialect()) == text_form
    on_pg = column.process_bind_param(value, postgresql.dialect())
    assert on_pg == value
    assert on_pg.utcoffset() == timedelta(0)
    assert column.process_result_value(text_form, sqlite.dialect()) == value


def test_a_naive_timestamp_is_refused_by_the_store():
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2025, 5, 1, 10, 0), sqlite.dialect())


async def test_migrations_produce_exactly_the_declared_tables(engine):
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_replicas_migrating_an_empty_postgresql_at_once_agree(postgres):
    """Three processes started together on a new database: the migration lock lets one
    migrate, the others find it done, and the tables are exactly the declared ones."""
    url = postgres.url(await postgres.create(migrated=False))
    code = (
        "import asyncio, sys\n"
        "from remediator.store.db import create_engine, migrate\n"
        "asyncio.run(migrate(create_engine(sys.argv[1])))\n"
    )
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = await asyncio.gather(*(r.communicate() for r in replicas))
    assert [r.returncode for r in replicas] == [0, 0, 0], [err for _, err in results]
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            heads = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [h[0] for h in heads] == [
            ScriptDirectory.from_config(alembic_config()).get_current_head()
        ]
    finally:
        await engine.dispose()


async def test_migrate_is_idempotent(engine):
    await migrate(engine)
    async with engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _down_and_up(engine) -> None:
    """Every revision's downgrade, then every upgrade again: the tables end as declared."""

    def down_up(conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        command.upgrade(cfg, "head")

    await migrate(engine)
    async with engine.begin() as conn:
        await conn.run_sync(down_up)
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_every_migration_downgrades_and_upgrades_again_on_sqlite(engine):
    await _down_and_up(engine)


async def test_every_migration_downgrades_and_upgrades_again_on_postgresql(postgres):
    engine = create_engine(postgres.url(await postgres.create(migrated=False)))
    try:
        await _down_and_up(engine)
    finally:
        await engine.dispose()


def _incident(id_: str) -> dict[str, object]:
    return {
        **dict.fromkeys(("alertname", "namespace", "severity", "summary", "external_url"), ""),
        **{"id": id_, "status": "open", "group_key": "", "created_at": T0, "updated_at": T0},
    }


async def _synchronous(conn) -> int:
    return (await conn.execute(text("PRAGMA synchronous"))).scalar()


async def test_durable_transactions_fsync_and_bookkeeping_does_not(engine):
    full, normal = 2, 1
    async with durable_transaction(engine) as conn:
        assert await _synchronous(conn) == full
    async with engine.begin() as conn:
        assert await _synchronous(conn) == normal


async def test_statements_run_on_the_loop_and_commits_off_it(engine):
    # Statements are microseconds in SQLite; a hop to another thread each was most of
    # an alert's latency. A commit may fsync, so it must not run on the loop.
    seen: list[tuple[str, int]] = []
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        raw._conn.set_trace_callback(lambda sql: seen.append((sql, threading.get_ident())))
        async with conn.begin():
            await conn.execute(text("INSERT INTO guard_state VALUES ('t', '{}', '2025-01-01')"))
        raw._conn.set_trace_callback(None)
    loop_thread = threading.get_ident()
    where = {sql.split()[0].upper(): thread for sql, thread in seen}
    assert where["INSERT"] == loop_thread
    assert where["COMMIT"] != loop_thread


async def test_a_commit_marked_for_the_loop_runs_there_and_the_mark_ends_with_it(engine, tmp_path):
    # An intent's commit is all that stands between an alert and its action: the hop to
    # aiosqlite's thread and back cost the alert more than the fsync stalls the loop.
    # The next holder of the connection commits on aiosqlite's thread again.
    seen: list[tuple[str, int]] = []
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
    raw._conn.set_trace_callback(lambda sql: seen.append((sql, threading.get_ident())))
    for name in ("marked", "plain"):
        async with durable_transaction(engine) as conn:
            await conn.execute(
                text("INSERT INTO guard_state VALUES (:name, '{}', '')"), {"name": name}
            )
            if name == "marked":
                await commit_on_loop(conn)
    raw._conn.set_trace_callback(None)
    commits = [thread for sql, thread in seen if sql.upper().startswith("COMMIT")]
    assert [thread == threading.get_ident() for thread in commits] == [True, False]
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as other:
        rows = other.execute("SELECT name FROM guard_state ORDER BY name").fetchall()
    assert rows == [("marked",), ("plain",)]


async def test_statements_run_without_a_greenlet_and_keep_core_semantics(engine):
    # SQLAlchemy's greenlet around each statement was half of its CPU. Rows, RETURNING,
    # rowcounts, type processing and error translation must be Core's all the same.
    inside: list[tuple[str, bool]] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _k, sql, *_: inside.append((sql.split()[0], in_greenlet())),
    )
    # A durable transaction: its options, and its BEGIN hook's PRAGMA, greenlet-free too.
    async with durable_transaction(engine) as conn:
        created = await conn.execute(
            insert(incidents).returning(incidents.c.id, incidents.c.created_at), _incident("a")
        )
        assert created.all() == [("a", T0)]
        assert await conn.scalar(select(incidents.c.created_at).where(incidents.c.id == "a")) == T0
        updated = await conn.execute(
            update(incidents).values(team="t").where(incidents.c.id == "a")
        )
        assert updated.rowcount == 1
        with pytest.raises(IntegrityError):
            await conn.execute(insert(incidents), _incident("a"))
    assert [sql for sql, _ in inside] == ["PRAGMA", "INSERT", "SELECT", "UPDATE", "INSERT"]
    assert not any(greenlet for _, greenlet in inside)
    async with engine.connect() as conn:  # the greenlet path SQLAlchemy's own API takes
        assert (await conn.exec_driver_sql("SELECT team FROM incidents")).all() == [("t",)]


async def test_checkout_commit_and_return_run_without_a_greenlet(engine):
    # Each greenlet hop, and the task SQLAlchemy starts to close a connection, cost
    # more CPU than a statement; an alert's path opens and commits two transactions.
    inside: list[tuple[str, bool]] = []

    def note(name: str):
        return lambda *_: inside.append((name, in_greenlet()))

    for name in ("checkout", "checkin", "reset"):
        event.listen(engine.sync_engine.pool, name, note(name))
    for name in ("begin", "commit", "rollback"):
        event.listen(engine.sync_engine, name, note(name))
    tasks = len(asyncio.all_tasks())
    async with durable_transaction(engine) as conn:  # writes: the commit fsyncs
        await conn.execute(insert(incidents), _incident("a"))
    async with engine.begin() as conn:  # reads only
        assert await conn.scalar(select(incidents.c.id)) == "a"
    async with engine.connect() as conn:  # no transaction at all
        await conn.execute(select(incidents.c.id))
    assert len(asyncio.all_tasks()) == tasks
    assert [name for name, _ in inside] == [
        *("checkout", "begin", "commit", "reset", "checkin"),
        *("checkout", "begin", "commit", "reset", "checkin"),
        *("checkout", "begin", "rollback", "reset", "checkin"),
    ]
    assert not any(greenlet for _, greenlet in inside)


@pytest.mark.parametrize("on_loop", [False, True], ids=["on aiosqlite's thread", "on the loop"])
async def test_a_failed_commit_raises_core_s_error_and_rolls_back(engine, on_loop):
    # The commit itself runs ahead of SQLAlchemy's; its outcome must still be the one
    # SQLAlchemy reports. A deferred foreign key fails at COMMIT, not at the INSERT.
    orphan = {"incident_id": "missing", "status": "pending", "attempts": 0}
    orphan |= {"not_before": T0, "created_at": T0}

    async def write_orphan(conn) -> None:
        async with conn.begin():
            await conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            await conn.execute(insert(incidents), _incident("a"))
            await conn.execute(insert(jobs_table), orphan)
            if on_loop:
                await commit_on_loop(conn)

    async with engine.connect() as conn:
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            await write_orphan(conn)
        assert not conn.in_transaction()
    async with durable_transaction(engine) as conn:
        assert (await conn.execute(select(incidents.c.id))).all() == []
        await conn.execute(insert(incidents), _incident("b"))
    async with engine.connect() as conn:
        assert (await conn.execute(select(incidents.c.id))).all() == [("b",)]


async def test_a_commit_sqlalchemy_did_not_take_is_not_taken_by_the_next(engine, tmp_path):
    # The commit runs ahead of SQLAlchemy's; if SQLAlchemy then fails before asking for
    # it, the next commit must still be made, not answered from the earlier one.
    def fail_once(conn) -> None:
        event.remove(engine.sync_engine, "commit", fail_once)
        raise RuntimeError("a commit hook failed")

    event.listen(engine.sync_engine, "commit", fail_once)
    with pytest.raises(RuntimeError, match="commit hook"):
        async with durable_transaction(engine) as conn:
            await conn.execute(insert(incidents), _incident("a"))
    async with engine.connect() as conn:
        await conn.execute(insert(incidents), _incident("b"))
        await conn.commit()  # SQLAlchemy's own path: not ahead of it
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as other:
        assert ("b",) in other.execute("SELECT id FROM incidents").fetchall()


async def test_holders_of_the_one_connection_take_turns_in_order(engine):
    # A webhook waiting to commit must get the connection before the worker that just
    # gave it back can take it again for its next transaction.
    order: list[str] = []

    async def hold(name: str) -> None:
        async with engine.connect() as conn:
            order.append(name)
            await conn.execute(select(incidents.c.id))

    first = await engine.connect().start()
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0.05)
    assert not second.done()
    await first.close()
    await hold("first again")
    await asyncio.wait_for(second, 5)
    assert order == ["second", "first again"]


async def test_calls_made_while_a_commit_waits_on_the_thread_queue_behind_it(engine, tmp_path):
    # A holder cancelled while its commit waits on aiosqlite's thread (as at shutdown)
    # rolls back next. Run at once on the loop, that rollback would discard its rows
    # before the commit ran, and the commit would then seal the next holder's half-done
    # transaction instead.
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
    gate = threading.Event()
    blocker = asyncio.create_task(aiosqlite.Connection._execute(raw, gate.wait, 5))

    async def write(id_: str) -> None:
        async with durable_transaction(engine) as conn:
            await conn.execute(insert(incidents), _incident(id_))

    first = asyncio.create_task(write("a"))
    await asyncio.sleep(0.05)  # "a" is written; its commit waits behind the blocker
    first.cancel()
    second = asyncio.create_task(write("b"))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(asyncio.gather(blocker, second), 5)
    with pytest.raises(asyncio.CancelledError):
        await first
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as other:
        assert other.execute("SELECT id FROM incidents ORDER BY id").fetchall() == [
            ("a",),
            ("b",),
        ]
    async with durable_transaction(engine) as conn:  # and the loop path is back
        await conn.execute(insert(incidents), _incident("c"))
    assert raw.loop_ready is not None


async def test_a_closed_sqlite_connection_fails_the_statement_and_is_replaced(engine):
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.close()
        with pytest.raises(DBAPIError):
            await conn.execute(select(incidents.c.id))
    async with engine.connect() as conn:
        assert (await conn.execute(select(incidents.c.id))).all() == []


async def test_the_level_changes_only_when_durability_does(engine):
    # A live worker's transactions are all durable: no PRAGMA around each of them.
    seen: list[str] = []
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
    raw._conn.set_trace_callback(seen.append)
    for durable in (True, True, False, False, True):
        async with durable_transaction(engine) if durable else engine.begin() as conn:
            assert await _synchronous(conn) == (2 if durable else 1)
    raw._conn.set_trace_callback(None)
    assert [sql for sql in seen if sql.startswith("PRAGMA synchronous=")] == [
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA synchronous=FULL",
    ]


async def test_durable_level_is_configurable(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", sqlite_synchronous="NORMAL")
    async with durable_transaction(engine) as conn:
        assert await _synchronous(conn) == 1
    await engine.dispose()


async def _add_job(engine, incident_id: str, not_before: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO incidents (id, status, alertname, namespace, severity, summary, "
                "external_url, group_key, created_at, updated_at) VALUES "
                "(:id, 'open', '', '', '', '', '', '', :t, :t)"
            ),
            {"id": incident_id, "t": T0.replace(tzinfo=None).isoformat(sep=" ")},
        )
        await conn.execute(
            text(
                "INSERT INTO jobs (incident_id, status, attempts, not_before, created_at) "
                "VALUES (:id, 'pending', 0, :nb, :t)"
            ),
            {
                "id": incident_id,
                "nb": not_before.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
                "t": "2025-05-01 10:00:00.000000",
            },
        )


async def test_claim_takes_due_jobs_once_in_order(engine):
    await _add_job(engine, "a", T0)
    await _add_job(engine, "b", T0)
    await _add_job(engine, "later", T0 + timedelta(minutes=5))
    first = await jobs.claim(engine, "w1", T0, limit=1)
    second = await jobs.claim(engine, "w2", T0, limit=10)
    assert [j.incident_id for j in first] == ["a"]
    assert [j.incident_id for j in second] == ["b"]
    assert first[0].attempts == 1
    assert await jobs.claim(engine, "w3", T0, limit=10) == []
    assert [
        j.incident_id for j in await jobs.claim(engine, "w3", T0 + timedelta(minutes=5), 10)
    ] == ["later"]
    assert await jobs.depth(engine) == 3


async def test_stale_claims_are_requeued_and_finished_jobs_leave_the_queue(engine):
    await _add_job(engine, "a", T0)
    [job] = await jobs.claim(engine, "crashed", T0, limit=1)
    assert await jobs.requeue_stale(engine, claimed_before=T0) == 0  # not older than the cut-off
    assert await jobs.requeue_stale(engine, claimed_before=T0 + timedelta(seconds=1)) == 1
    [again] = await jobs.claim(engine, "w2", T0, limit=1)
    assert (again.id, again.attempts) == (job.id, 2)
    async with engine.begin() as conn:
        await jobs.finish(conn, [again.id], T0)
    assert await jobs.depth(engine) == 0


async def test_retry_later_respects_not_before(engine):
    await _add_job(engine, "a", T0)
    [job] = await jobs.claim(engine, "w", T0, limit=1)
    await jobs.retry_later(engine, job.id, T0 + timedelta(seconds=30), "boom")
    assert await jobs.claim(engine, "w", T0 + timedelta(seconds=29), limit=1) == []
    [again] = await jobs.claim(engine, "w", T0 + timedelta(seconds=30), limit=1)
    assert again.id == job.id


async def test_alerts_and_verify_looks_are_claimed_apart(engine):
    from datetime import UTC, datetime

    from remediator.store import jobs
    from remediator.store.tables import incidents

    now = datetime(2025, 5, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(
            incidents.insert().values(
                id="i1",
                status="open",
                alertname="A",
                namespace="prod",
                severity="",
                summary="",
                external_url="",
                group_key="",
                created_at=now,
                updated_at=now,
            )
        )
        for _ in range(3):
            await jobs.enqueue(conn, "i1", "verify", now, execution_id=1)
        await jobs.enqueue(conn, "i1", "alert", now)
    # The worker's two lanes each take only their own kind, oldest first.
    assert [(j.id, j.kind) for j in await jobs.claim(engine, "w", now, 32)] == [(4, "alert")]
    looks = await jobs.claim(engine, "w", now, 2, verify=True)
    assert [(j.id, j.kind) for j in looks] == [(1, "verify"), (2, "verify")]
    assert await jobs.claim(engine, "w", now, 32) == []


async def test_a_claim_on_postgresql_skips_rows_another_replica_holds(postgres):
    """The claim locks what it takes and passes over what another transaction holds,
    instead of waiting for it or taking it too (FOR UPDATE SKIP LOCKED)."""
    engine = create_engine(postgres.url(await postgres.create()))
    try:
        async with engine.begin() as conn:
            for incident_id in ("a", "b", "c"):
                await conn.execute(
                    insert(incidents).values(
                        id=incident_id, status="open", alertname="", namespace="",
                        severity="", summary="", external_url="", group_key="",
                        created_at=T0, updated_at=T0,
                    )
                )  # fmt: skip
                await jobs.enqueue(conn, incident_id, "alert", T0)
        async with engine.connect() as other:
            # Another replica is mid-claim: it holds the oldest row, uncommitted.
            held = await other.execute(text("SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE"))
            [held_id] = held.scalars().all()
            claimed = await asyncio.wait_for(jobs.claim(engine, "w2", T0, limit=10), 5)
            await other.rollback()
        assert held_id not in [j.id for j in claimed]
        assert [j.incident_id for j in claimed] == ["b", "c"]
        [late] = await jobs.claim(engine, "w3", T0, limit=10)  # released: now it is free
        assert late.id == held_id
    finally:
        await engine.dispose()


async def test_a_postgresql_checkout_sends_nothing_of_its_own(postgres):
    """Taking a pooled connection asks the driver, not the server. ``pool_pre_ping``
    wrapped a ping in a transaction of its own on every checkout: three round trips."""
    engine = create_engine(postgres.url(await postgres.create(migrated=False)))
    sent: list[str] = []
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            raw.add_query_logger(lambda record: sent.append(record.query))
        for _ in range(2):
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
        # asyncpg logs what it sends unprepared: the transaction's own BEGIN and COMMIT.
        assert sent == ["BEGIN;", "COMMIT;"] * 2
    finally:
        await engine.dispose()


async def test_a_postgresql_connection_the_server_closed_is_replaced_at_checkout(postgres):
    engine = create_engine(postgres.url(await postgres.create(migrated=False)))
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(host="127.0.0.1", port=postgres.port, user="postgres")
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(100):  # the loop reads the server's goodbye
            if raw.is_closed():
                break
            await asyncio.sleep(0.01)
        assert raw.is_closed()
        async with engine.begin() as conn:  # the first transaction after it succeeds
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()
