"""Retention: purge old resolved incidents together with everything recorded about them.

An incident is purged once it is resolved, nothing was recorded on it since the cutoff
(``updated_at``, which every timeline event and the resolution itself touch), and nothing
about it is still under way: no pending or running work item, no execution waiting for
its outcome (``finished_at`` unset: a live step's intent, or an applied one being
verified), no approval awaiting a decision. Open incidents are never purged, however old.

The rows that belong to an incident are found through the tables' foreign keys and
deleted children first (today: approval_votes → approvals; executions, jobs, events and
alerts; then incidents), so a table that gains a foreign key to incidents is purged with
them instead of making every purge fail. Each batch is one transaction; between batches
the connection is free for webhooks and workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Delete, Select, Table, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.models.events import IncidentStatus
from remediator.store.tables import approvals, executions, incidents, jobs, metadata

UNFINISHED_JOBS = ("pending", "running")


async def purge(engine: AsyncEngine, older_than: datetime, batch: int = 500) -> int:
    """Delete resolved incidents quiet since before ``older_than``; return how many."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = list((await conn.scalars(_candidates(older_than, batch))).all())
            for statement in _deletes(ids):
                await conn.execute(statement)
        total += len(ids)
        if len(ids) < batch:
            return total
        await asyncio.sleep(0)  # let whoever waits for the connection have it in between


def _candidates(older_than: datetime, batch: int) -> Select[Any]:
    # Work items have no index on incident_id, but few are unfinished: one small set.
    busy = select(jobs.c.incident_id).where(jobs.c.status.in_(UNFINISHED_JOBS))
    return (
        select(incidents.c.id)
        .where(
            incidents.c.status == IncidentStatus.RESOLVED,
            incidents.c.updated_at < older_than,  # ≥ resolved_at: resolving touches it
            incidents.c.id.not_in(busy),
            ~exists().where(
                executions.c.incident_id == incidents.c.id, executions.c.finished_at.is_(None)
            ),
            ~exists().where(
                approvals.c.incident_id == incidents.c.id, approvals.c.status == "pending"
            ),
        )
        # Along the (status, updated_at) index: a purge with nothing due reads nothing.
        .order_by(incidents.c.updated_at, incidents.c.id)
        .limit(batch)
        # PostgreSQL: an incident a replica is writing to right now waits for the next run.
        .with_for_update(skip_locked=True)
    )


def _deletes(ids: Sequence[str]) -> list[Delete]:
    """DELETE statements for these incidents and every row that refers to them, in an
    order the foreign keys accept (children first)."""
    if not ids:
        return []
    statements = []
    for table in reversed(metadata.sorted_tables):
        condition = _belongs(table, ids, frozenset())
        if condition is not None:
            statements.append(delete(table).where(condition))
    return statements


def _belongs(
    table: Table, ids: Sequence[str], seen: frozenset[Table]
) -> ColumnElement[bool] | None:
    """Which rows of ``table`` belong to the incidents ``ids``; None if none can."""
    if table is incidents:
        return incidents.c.id.in_(ids)
    conditions: list[ColumnElement[bool]] = []
    for fk in sorted(table.foreign_keys, key=lambda fk: fk.parent.name):
        parent = fk.column.table
        if parent in seen or parent is table:
            continue
        if parent is incidents and fk.column is incidents.c.id:
            conditions.append(fk.parent.in_(ids))
            continue
        owned = _belongs(parent, ids, seen | {table})
        if owned is not None:
            conditions.append(fk.parent.in_(select(fk.column).where(owned)))
    return or_(*conditions) if conditions else None
