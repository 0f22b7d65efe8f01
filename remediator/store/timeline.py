"""The incident timeline: append-only events, and the queries the API reads it with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remediator.models.alert import AlertInstance
from remediator.models.events import EventKind
from remediator.models.incident import (
    Execution,
    IncidentDetail,
    IncidentPage,
    IncidentSummary,
    TimelineEvent,
)
from remediator.store.tables import alerts, events, executions, incidents


@dataclass(frozen=True)
class NewEvent:
    """An event a pipeline stage wants recorded."""

    stage: str
    kind: str
    message: str
    runbook: str | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IncidentFilter:
    status: str | None = None
    runbook: str | None = None
    namespace: str | None = None
    alertname: str | None = None
    team: str | None = None


# The statements of an alert's path, built once: building one cost more than running it.
_APPEND = insert(events)
_TOUCH = (
    update(incidents)
    .where(incidents.c.id == bindparam("b_id"))
    .values(updated_at=bindparam("b_now"))
)
_INSTANCES = (
    select(incidents.c.status.label("incident_status"), incidents.c.external_url, alerts)
    .join(alerts, alerts.c.incident_id == incidents.c.id)
    .where(incidents.c.id.in_(bindparam("ids", expanding=True)))
)
_SET_TEAM = (
    update(incidents)
    .where(incidents.c.id == bindparam("b_id"), incidents.c.team == "")
    .values(team=bindparam("b_team"))
)


async def append(conn: AsyncConnection, new: Sequence[tuple[str, NewEvent]], now: datetime) -> None:
    """Append ``(incident_id, event)`` pairs in order; touch each incident's ``updated_at``.

    The caller commits.
    """
    if not new:
        return
    rows = [
        {
            "incident_id": incident_id,
            "at": now,
            "stage": e.stage,
            "kind": e.kind,
            "runbook": e.runbook,
            "reason": e.reason,
            "message": e.message,
            "data": e.data,
        }
        for incident_id, e in new
    ]
    await conn.execute(_APPEND, rows)
    touched = [
        {"b_id": incident_id, "b_now": now} for incident_id in dict.fromkeys(i for i, _ in new)
    ]
    await conn.execute(_TOUCH, touched)


async def existing(conn: AsyncConnection, incident_ids: Sequence[str]) -> set[str]:
    """Which of these incidents are still stored (retention may have purged some)."""
    if not incident_ids:
        return set()
    found = await conn.execute(select(incidents.c.id).where(incidents.c.id.in_(incident_ids)))
    return set(found.scalars())


async def load_instances(
    conn: AsyncConnection, incident_ids: Sequence[str]
) -> dict[str, AlertInstance]:
    """The alert instances of these incidents, by incident id (missing ones are absent)."""
    return {
        row.incident_id: AlertInstance(
            incident_id=row.incident_id,
            incident_status=row.incident_status,
            fingerprint=row.fingerprint,
            status=row.status,
            starts_at=row.starts_at,
            labels=row.labels,
            annotations=row.annotations,
            generator_url=row.generator_url,
            external_url=row.external_url,
        )
        for row in await conn.execute(_INSTANCES, {"ids": list(incident_ids)})
    }


def _summary_query() -> Select[Any]:
    return select(
        incidents,
        alerts.c.fingerprint,
        alerts.c.starts_at,
        alerts.c.notifications,
        alerts.c.labels,
        alerts.c.annotations,
        alerts.c.generator_url,
    ).join(alerts, alerts.c.incident_id == incidents.c.id)


async def list_incidents(
    engine: AsyncEngine,
    where: IncidentFilter,
    limit: int,
    cursor: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> IncidentPage:
    """Newest first; ``cursor`` is the last id of the previous page.

    ``since``/``until`` bound when remediator opened the incident:
    ``since <= created_at < until``.
    """
    if any("\x00" in (value or "") for value in vars(where).values() if isinstance(value, str)):
        # No stored value holds a NUL (ingest refuses them) and PostgreSQL cannot even
        # compare one: such a filter matches nothing.
        return IncidentPage(items=[], next_cursor=None)
    query = _summary_query()
    conditions: list[ColumnElement[bool]] = []
    if where.status:
        conditions.append(incidents.c.status == where.status)
    if where.namespace:
        conditions.append(incidents.c.namespace == where.namespace)
    if where.alertname:
        conditions.append(incidents.c.alertname == where.alertname)
    if where.team:
        conditions.append(incidents.c.team == where.team)
    if since is not None:
        conditions.append(incidents.c.created_at >= since)
    if until is not None:
        conditions.append(incidents.c.created_at < until)
    ever_matched: Select[Any] | None = None
    if where.runbook:
        matched = and_(events.c.kind == EventKind.MATCHED, events.c.runbook == where.runbook)
        conditions.append(exists().where(events.c.incident_id == incidents.c.id, matched))
        ever_matched = select(exists().where(matched))
    if cursor:
        conditions.append(incidents.c.id < cursor)
    query = query.where(*conditions).order_by(incidents.c.id.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        # A runbook that never matched (a typo, a new one) would walk the whole history
        # looking for its incidents; one index lookup says there are none.
        if ever_matched is not None and not (await conn.execute(ever_matched)).scalar():
            return IncidentPage(items=[], next_cursor=None)
        rows = (await conn.execute(query)).all()
    items = [IncidentSummary.model_validate(r, from_attributes=True) for r in rows[:limit]]
    next_cursor = items[-1].id if len(rows) > limit else None
    return IncidentPage(items=items, next_cursor=next_cursor)


async def get_incident(engine: AsyncEngine, incident_id: str) -> IncidentDetail | None:
    async with engine.connect() as conn:
        row = (await conn.execute(_summary_query().where(incidents.c.id == incident_id))).first()
        if row is None:
            return None
        timeline = (
            await conn.execute(
                select(events).where(events.c.incident_id == incident_id).order_by(events.c.id)
            )
        ).all()
        runs = (
            await conn.execute(
                select(executions)
                .where(executions.c.incident_id == incident_id)
                .order_by(executions.c.id)
            )
        ).all()
    return IncidentDetail.model_validate(
        {
            **row._asdict(),
            "events": [TimelineEvent.model_validate(e, from_attributes=True) for e in timeline],
            "executions": [Execution.model_validate(x, from_attributes=True) for x in runs],
        }
    )


async def set_team(conn: AsyncConnection, incident_id: str, team: str) -> None:
    """Record the owning team the first time a runbook matches (routing and filters)."""
    await conn.execute(_SET_TEAM, {"b_id": incident_id, "b_team": team})
