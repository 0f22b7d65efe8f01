"""Retention: old resolved incidents are purged with every row about them, in batches;
open, recent and unfinished ones stay; the periodic task counts what it purged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.app import create_app
from remediator.errors import ConfigError
from remediator.models.ids import new_id
from remediator.settings import RetentionSettings, Settings
from remediator.store import retention
from remediator.store.db import create_engine, migrate
from remediator.store.tables import (
    alerts,
    approval_votes,
    approvals,
    events,
    executions,
    incidents,
    jobs,
)
from tests.conftest import AUTH, ClientFactory, Clock, eventually
from tests.payloads import alert, crashloop_labels, notification

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)
DEPENDENTS = (alerts, events, jobs, executions, approvals)


# --- purge() on explicit times -------------------------------------------------------


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(store_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


async def seed(
    engine: AsyncEngine,
    *,
    status: str = "resolved",
    updated: datetime = OLD,
    job: str | None = "done",
    execution_finished: bool | None = True,
    approval: str | None = "approved",
) -> str:
    """An incident with an alert, events, and optionally a job, an execution and an
    approval with a vote; returns its id."""
    incident_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(
            insert(incidents).values(
                id=incident_id,
                status=status,
                alertname="KubePodCrashLooping",
                namespace="prod",
                severity="critical",
                summary="pod is crash looping",
                external_url="http://alertmanager:9093",
                group_key="{}",
                team="web-team",
                created_at=OLD - timedelta(hours=1),
                updated_at=updated,
                resolved_at=min(updated, OLD) if status == "resolved" else None,
            )
        )
        await conn.execute(
            insert(alerts).values(
                id=new_id(),
                incident_id=incident_id,
                fingerprint=incident_id[-16:],
                starts_at=OLD - timedelta(hours=1),
                ends_at=None,
                status="resolved" if status == "resolved" else "firing",
                labels=crashloop_labels(),
                annotations={},
                generator_url="",
                notifications=1,
                first_seen=OLD,
                last_seen=OLD,
            )
        )
        await conn.execute(
            insert(events),
            [
                {
                    "incident_id": incident_id,
                    "at": OLD,
                    "stage": "ingest",
                    "kind": kind,
                    "runbook": None,
                    "reason": None,
                    "message": kind,
                    "data": {"n": n},
                }
                for n, kind in enumerate(("received", "matched", "dry_run", "resolved"))
            ],
        )
        if job is not None:
            await conn.execute(
                insert(jobs).values(
                    incident_id=incident_id,
                    status=job,
                    attempts=1,
                    not_before=OLD,
                    created_at=OLD,
                    finished_at=OLD if job in ("done", "failed") else None,
                )
            )
        if execution_finished is not None:
            await conn.execute(
                insert(executions).values(
                    incident_id=incident_id,
                    runbook="crashloop",
                    version="2",
                    step=0,
                    action="restart",
                    target="Deployment/prod/web",
                    dry_run=False,
                    status="verified" if execution_finished else "applied",
                    created_at=OLD,
                    finished_at=OLD if execution_finished else None,
                    detail="",
                    uid=new_id(),
                )
            )
        if approval is not None:
            approval_id = new_id()
            await conn.execute(
                insert(approvals).values(
                    id=approval_id,
                    incident_id=incident_id,
                    runbook="crashloop",
                    version="2",
                    target="Deployment/prod/web",
                    summary="",
                    changes=[],
                    status=approval,
                    reason="",
                    approvers=["U1"],
                    min_approvals=1,
                    created_at=OLD,
                    expires_at=OLD + timedelta(minutes=30),
                    decided_by=["U1"] if approval != "pending" else [],
                )
            )
            await conn.execute(
                insert(approval_votes).values(
                    approval_id=approval_id, user_id="U1", decision="approve", at=OLD
                )
            )
    return incident_id


async def rows_of(engine: AsyncEngine, incident_id: str) -> dict[str, int]:
    """How many rows each table holds about ``incident_id``."""
    async with engine.connect() as conn:
        counts = {
            t.name: await conn.scalar(
                select(func.count()).select_from(t).where(t.c.incident_id == incident_id)
            )
            for t in DEPENDENTS
        }
        counts["incidents"] = await conn.scalar(
            select(func.count()).select_from(incidents).where(incidents.c.id == incident_id)
        )
        counts["approval_votes"] = await conn.scalar(
            select(func.count())
            .select_from(approval_votes.join(approvals))
            .where(approvals.c.incident_id == incident_id)
        )
    return {name: n or 0 for name, n in counts.items()}


async def test_purge_deletes_old_resolved_incidents_with_every_row_about_them(
    engine: AsyncEngine,
) -> None:
    old = await seed(engine)
    bare = await seed(engine, job=None, execution_finished=None, approval=None)
    failed_job = await seed(engine, job="failed", approval="expired")
    kept = {
        "open for a long time": await seed(engine, status="open"),
        "resolved recently": await seed(engine, updated=RECENT),
        "touched recently": await seed(engine, updated=RECENT - timedelta(days=20)),
        "quiet exactly since the cutoff": await seed(engine, updated=CUTOFF),
        "pending work item": await seed(engine, job="pending"),
        "running work item": await seed(engine, job="running"),
        "execution being verified": await seed(engine, execution_finished=False),
        "approval awaiting a decision": await seed(engine, approval="pending"),
    }
    before = {name: await rows_of(engine, i) for name, i in kept.items()}
    assert (await rows_of(engine, old))["approval_votes"] == 1

    assert await retention.purge(engine, CUTOFF, batch=500) == 3

    for gone in (old, bare, failed_job):
        assert set((await rows_of(engine, gone)).values()) == {0}
    assert {name: await rows_of(engine, i) for name, i in kept.items()} == before
    assert await retention.purge(engine, CUTOFF, batch=500) == 0


async def test_purge_goes_in_batches_of_one_transaction_each(engine: AsyncEngine) -> None:
    ids = [await seed(engine) for _ in range(5)]
    open_id = await seed(engine, status="open")
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda _conn: commits.append(1))

    assert await retention.purge(engine, CUTOFF, batch=2) == 5

    assert len(commits) == 3  # 2 + 2 + 1
    async with engine.connect() as conn:
        left = (await conn.scalars(select(incidents.c.id))).all()
    assert left == [open_id]
    for gone in ids:
        assert set((await rows_of(engine, gone)).values()) == {0}
    with pytest.raises(ValueError, match="batch"):
        await retention.purge(engine, CUTOFF, batch=0)


def test_every_table_that_refers_to_incidents_is_purged() -> None:
    deleted = [str(s.table) for s in retention._deletes(["x"])]
    assert deleted[-1] == "incidents"
    assert set(deleted) == {
        "incidents",
        "alerts",
        "events",
        "jobs",
        "executions",
        "approvals",
        "approval_votes",
    }
    assert deleted.index("approval_votes") < deleted.index("approvals")


# --- settings ------------------------------------------------------------------------


def test_retention_settings() -> None:
    default = Settings().retention
    assert (default.enabled, default.max_age, default.interval, default.batch) == (
        True,
        timedelta(days=30),
        3600.0,
        500,
    )
    assert Settings.load(None, **{"retention.max_age": "2w"}).retention.max_age == timedelta(
        days=14
    )
    for bad in ("30m", 30, "soon"):
        with pytest.raises(ConfigError, match=r"retention\.max_age"):
            Settings.load(None, **{"retention.max_age": bad})
    with pytest.raises(ConfigError, match=r"retention\.batch"):
        Settings.load(None, **{"retention.batch": 0})


# --- the periodic task, on a virtual clock ----------------------------------------------


async def start(
    aiohttp_client: ClientFactory, settings: Settings, clock: Clock, **retention_settings: Any
) -> Any:
    keep = RetentionSettings(**{"max_age": "1h", "interval": 0.05, **retention_settings})
    app = create_app(settings.model_copy(update={"retention": keep}), clock=clock)
    return await aiohttp_client(app)


async def open_incident(client: Any, deployment: str) -> str:
    """Send a crash-loop alert and wait until the pipeline is done with it."""
    labels = crashloop_labels(deployment=deployment, pod=f"{deployment}-1")
    resp = await client.post("/api/v1/alerts", json=notification(alert(labels)), headers=AUTH)
    assert resp.status == 200, await resp.text()
    page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
    incident_id: str = page["items"][0]["id"]

    async def done() -> bool:
        detail = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)).json()
        return any(e["kind"] == "dry_run" for e in detail["events"])

    await eventually(done)
    return incident_id


async def resolve(client: Any, deployment: str) -> None:
    labels = crashloop_labels(deployment=deployment, pod=f"{deployment}-1")
    body = notification(alert(labels, status="resolved"))
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert (await resp.json())["resolved"] == 1


async def exists(client: Any, incident_id: str) -> bool:
    resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
    assert resp.status in (200, 404)
    return resp.status == 200


async def purged_total(client: Any) -> float:
    text = await (await client.get("/metrics")).text()
    [line] = [x for x in text.splitlines() if x.startswith("remediator_incidents_purged_total ")]
    return float(line.split()[1])


async def test_old_resolved_incidents_leave_the_api_and_are_counted(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    clock = Clock()
    client = await start(aiohttp_client, settings, clock)
    old = await open_incident(client, "old")
    await resolve(client, "old")
    open_old = await open_incident(client, "still-open")
    clock.advance(timedelta(hours=2))
    recent = await open_incident(client, "recent")
    await resolve(client, "recent")

    await eventually(lambda: _gone(client, old))

    assert await exists(client, open_old)
    assert await exists(client, recent)
    assert await purged_total(client) == 1
    page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
    assert {i["id"] for i in page["items"]} == {open_old, recent}


async def _gone(client: Any, incident_id: str) -> bool:
    return not await exists(client, incident_id)


async def test_a_runbooks_guard_window_outlasts_a_shorter_max_age(
    aiohttp_client: ClientFactory, settings: Settings, runbook_dir: Path
) -> None:
    # max_runs counts executions of the last 3h: purging them after 1h would let the
    # runbook run more often than it allows.
    crashloop = runbook_dir / "crashloop.yaml"
    crashloop.write_text(
        crashloop.read_text() + "guards:\n  max_runs: {count: 5, window: 3h}\n", "utf-8"
    )
    clock = Clock()
    client = await start(aiohttp_client, settings, clock)
    old = await open_incident(client, "old")
    await resolve(client, "old")

    clock.advance(timedelta(hours=2))
    await asyncio.sleep(0.3)  # six rounds of the task
    assert await exists(client, old)

    clock.advance(timedelta(hours=2))
    await eventually(lambda: _gone(client, old))
    assert await purged_total(client) == 1


async def test_the_task_survives_a_failed_round(
    aiohttp_client: ClientFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = retention.purge
    calls: list[int] = []

    async def flaky(engine: AsyncEngine, older_than: datetime, batch: int = 500) -> int:
        calls.append(batch)
        if len(calls) == 1:
            raise OSError("disk I/O error")
        return await real(engine, older_than, batch)

    monkeypatch.setattr(retention, "purge", flaky)
    clock = Clock()
    client = await start(aiohttp_client, settings, clock, batch=7)
    old = await open_incident(client, "old")
    await resolve(client, "old")
    clock.advance(timedelta(hours=2))

    await eventually(lambda: _gone(client, old))
    assert len(calls) >= 2
    assert set(calls) == {7}
    assert await purged_total(client) == 1


async def test_switched_off_nothing_is_purged(
    aiohttp_client: ClientFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[datetime] = []

    async def spy(engine: AsyncEngine, older_than: datetime, batch: int = 500) -> int:
        calls.append(older_than)
        return 0

    monkeypatch.setattr(retention, "purge", spy)
    clock = Clock()
    client = await start(aiohttp_client, settings, clock, enabled=False)
    kept = await open_incident(client, "kept")
    await resolve(client, "kept")
    clock.advance(timedelta(days=400))
    await asyncio.sleep(0.3)

    assert await exists(client, kept)
    assert calls == []
    assert await purged_total(client) == 0
