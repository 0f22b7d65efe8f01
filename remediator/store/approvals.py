"""Approvals and their votes. Every decision is one conditional UPDATE on a pending row,
so the first valid decision wins however many clicks arrive at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remediator.store import dialect
from remediator.store.tables import approval_votes, approvals


@dataclass(frozen=True)
class Approval:
    id: str
    incident_id: str
    runbook: str
    version: str
    target: str
    summary: str
    changes: list[str]
    status: str  # pending | approved | rejected | expired
    reason: str
    approvers: list[str]
    min_approvals: int
    channel: str | None
    message_ts: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: list[str]


async def create(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    """Insert a pending approval; False when this incident and runbook already have one."""
    stmt = (
        dialect.insert(conn, approvals)
        .values(status="pending", decided_by=[], **row)
        .on_conflict_do_nothing()
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def get(conn: AsyncConnection, approval_id: str) -> Approval | None:
    row = (await conn.execute(select(approvals).where(approvals.c.id == approval_id))).first()
    return Approval(**row._asdict()) if row else None


async def find(conn: AsyncConnection, incident_id: str, runbook: str) -> Approval | None:
    row = (
        await conn.execute(
            select(approvals).where(
                approvals.c.incident_id == incident_id, approvals.c.runbook == runbook
            )
        )
    ).first()
    return Approval(**row._asdict()) if row else None


async def set_message(conn: AsyncConnection, approval_id: str, channel: str, ts: str) -> None:
    await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id)
        .values(channel=channel, message_ts=ts)
    )


async def vote(
    conn: AsyncConnection, approval_id: str, user: str, decision: str, now: datetime
) -> None:
    """Record a person's vote once; a second click by the same person changes nothing."""
    await conn.execute(
        dialect.insert(conn, approval_votes)
        .values(approval_id=approval_id, user_id=user, decision=decision, at=now)
        .on_conflict_do_nothing()
    )


async def approved_by(conn: AsyncConnection, approval_id: str) -> list[str]:
    rows = await conn.scalars(
        select(approval_votes.c.user_id)
        .where(approval_votes.c.approval_id == approval_id, approval_votes.c.decision == "approve")
        .order_by(approval_votes.c.at, approval_votes.c.user_id)
    )
    return list(rows)


async def settle(
    conn: AsyncConnection, approval_id: str, status: str, by: list[str], now: datetime
) -> bool:
    """Move a pending approval to its final status; False if another decision won."""
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "pending")
        .values(status=status, decided_by=by, decided_at=now)
    )
    return bool(result.rowcount)


async def due(conn: AsyncConnection, now: datetime) -> list[Approval]:
    """Pending approvals whose time is up."""
    rows = await conn.execute(
        select(approvals).where(approvals.c.status == "pending", approvals.c.expires_at <= now)
    )
    return [Approval(**r._asdict()) for r in rows]


async def for_incidents(conn: AsyncConnection, incident_ids: set[str]) -> dict[str, Approval]:
    """The decided approvals with a Slack message among these incidents, by incident."""
    rows = await conn.execute(
        select(approvals).where(
            approvals.c.incident_id.in_(incident_ids),
            approvals.c.message_ts.is_not(None),
            approvals.c.status != "pending",
        )
    )
    return {r.incident_id: Approval(**r._asdict()) for r in rows}
