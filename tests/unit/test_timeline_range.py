"""``list_incidents(since=, until=)``: a half-open range on when an incident was opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from remediator.store import timeline
from remediator.store.db import create_engine, migrate
from remediator.store.tables import alerts, incidents
from remediator.store.timeline import IncidentFilter

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    await migrate(engine)
    async with engine.begin() as conn:
        for n in range(4):  # opened at T0, T0+1h, T0+2h, T0+3h; ids sort the same way
            opened = T0 + timedelta(hours=n)
            incident_id = f"{n:021x}"
            await conn.execute(
                insert(incidents).values(
                    id=incident_id,
                    status="open",
                    alertname="A",
                    namespace="prod" if n % 2 else "stage",
                    severity="warning",
                    summary="",
                    external_url="",
                    group_key="{}",
                    team="",
                    created_at=opened,
                    updated_at=opened,
                )
            )
            await conn.execute(
                insert(alerts).values(
                    id=f"a{n}",
                    incident_id=incident_id,
                    fingerprint=f"{n:016x}",
                    starts_at=T0 - timedelta(days=1),  # not what the range looks at
                    status="firing",
                    labels={},
                    annotations={},
                    generator_url="",
                    notifications=1,
                    first_seen=opened,
                    last_seen=opened,
                )
            )
    yield engine
    await engine.dispose()


async def opened(engine, where=IncidentFilter(), **bounds) -> list[int]:  # noqa: B008
    page = await timeline.list_incidents(engine, where, 100, None, **bounds)
    return [int(i.id, 16) for i in page.items]


async def test_no_bounds_lists_everything(engine):
    assert await opened(engine) == [3, 2, 1, 0]


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"since": T0 + timedelta(hours=1)}, [3, 2, 1]),  # since is inclusive
        ({"until": T0 + timedelta(hours=1)}, [0]),  # until is exclusive
        ({"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=3)}, [2, 1]),
        ({"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=59)}, []),
        ({"since": T0 + timedelta(hours=9)}, []),
        # An aware time in another zone means the same instant.
        ({"since": (T0 + timedelta(hours=2)).astimezone(PLUS_2)}, [3, 2]),
    ],
)
async def test_bounds(engine, bounds, expected):
    assert await opened(engine, **bounds) == expected


async def test_bounds_combine_with_filters_and_paging(engine):
    since = T0 + timedelta(minutes=30)
    assert await opened(engine, IncidentFilter(namespace="prod"), since=since) == [3, 1]
    everything = IncidentFilter()
    first = await timeline.list_incidents(engine, everything, 1, None, since=since)
    assert [int(i.id, 16) for i in first.items] == [3]
    rest = await timeline.list_incidents(engine, everything, 5, first.next_cursor, since=since)
    assert [int(i.id, 16) for i in rest.items] == [2, 1]
