"""The incident list and the retention purge cost the same on a long history as on a
short one.

SQLite runs every statement on the event loop: a page that reads more as the tables
grow stops webhooks and actions for as long. Work is counted in SQLite VM steps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.models.events import EventKind, Stage
from remediator.store import retention, timeline
from remediator.store.db import create_engine, migrate
from remediator.store.tables import alerts, events, incidents
from remediator.store.timeline import IncidentFilter
from tests.sqlite_work import counted

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
EVERY = 5  # one incident in EVERY was matched by the runbook filtered on


async def _history(tmp_path: Path, count: int) -> AsyncEngine:
    """A migrated store holding ``count`` resolved incidents, one a minute from T0."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'list-{count}.db'}")
    await migrate(engine)
    opened = [(f"{n:021x}", T0 + timedelta(minutes=n)) for n in range(count)]
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(incidents),
                [
                    {"id": i, "status": "resolved", "alertname": "A", "namespace": "prod",
                     "severity": "", "summary": "", "external_url": "", "group_key": "",
                     "team": "sre", "created_at": at, "updated_at": at}
                    for i, at in opened
                ],
            )  # fmt: skip
            await conn.execute(
                insert(alerts),
                [
                    {"id": f"a{i}", "incident_id": i, "fingerprint": i, "starts_at": at,
                     "status": "resolved", "labels": {}, "annotations": {},
                     "generator_url": "", "notifications": 1, "first_seen": at,
                     "last_seen": at}
                    for i, at in opened
                ],
            )  # fmt: skip
            await conn.execute(
                insert(events),
                [
                    {"incident_id": i, "at": at, "stage": Stage.MATCH,
                     "kind": EventKind.MATCHED, "runbook": "web" if n % EVERY == 0 else "db",
                     "reason": None, "message": "matched", "data": {}}
                    for n, (i, at) in enumerate(opened)
                ],
            )  # fmt: skip
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def _page_work(
    tmp_path: Path, count: int, runbook: str | None = None, **where: str
) -> tuple[int, list[str]]:
    """Steps for the first page filtered on ``runbook`` or ``where``, ``count`` incidents
    stored."""
    engine = await _history(tmp_path, count)
    try:
        async with counted(engine) as steps:
            page = await timeline.list_incidents(
                engine, IncidentFilter(runbook=runbook, **where), 50, None
            )
    finally:
        await engine.dispose()
    return steps[0], [item.id for item in page.items]


async def test_the_runbook_filter_reads_a_page_not_the_history(tmp_path):
    small, first = await _page_work(tmp_path, 500, "web")
    large, newest = await _page_work(tmp_path, 5000, "web")
    assert first == [f"{n:021x}" for n in range(495, 245, -EVERY)]
    assert newest == [f"{n:021x}" for n in range(4995, 4745, -EVERY)]
    # Before the index included the incident id, each incident walked read all of the
    # runbook's matches: ten times the history, ten times the work.
    assert large < small * 2, (small, large)


async def test_a_runbook_that_never_matched_reads_nothing(tmp_path):
    """Without a look at the runbook's matches first, the page walked every incident."""
    small, none = await _page_work(tmp_path, 500, "nope")
    large, still_none = await _page_work(tmp_path, 5000, "nope")
    assert none == still_none == []
    assert large < small * 2, (small, large)


@pytest.mark.parametrize("where", [{"namespace": "prod"}, {"team": "sre"}, {"alertname": "A"}])
async def test_each_incident_filter_reads_a_page_not_the_history(tmp_path, where):
    """Every stored incident passes the filter: without the id in its index, SQLite
    sorted them all for each page."""
    small, first = await _page_work(tmp_path, 500, **where)
    large, newest = await _page_work(tmp_path, 5000, **where)
    assert first == [f"{n:021x}" for n in range(499, 449, -1)]
    assert newest == [f"{n:021x}" for n in range(4999, 4949, -1)]
    assert large < small * 2, (small, large)


async def _purge_work(tmp_path: Path, count: int) -> int:
    """Steps for a purge when no incident is old enough yet."""
    engine = await _history(tmp_path, count)
    try:
        async with counted(engine) as steps:
            assert await retention.purge(engine, T0 - timedelta(days=1)) == 0
    finally:
        await engine.dispose()
    return steps[0]


async def test_a_purge_with_nothing_due_reads_nothing(tmp_path):
    """Along (status, id) the candidate query walked every resolved incident, hourly."""
    small = await _purge_work(tmp_path, 500)
    large = await _purge_work(tmp_path, 5000)
    assert large < small * 2, (small, large)
