"""Work items: one per new firing alert instance, claimed by workers.

Claiming is one UPDATE … RETURNING over a ``FOR UPDATE SKIP LOCKED`` subquery, so on
PostgreSQL several replicas share the queue without a leader; SQLite ignores the lock
clause and has a single writer anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningUpdate

from remediator.store.tables import jobs


@dataclass(frozen=True)
class Job:
    id: int
    incident_id: str
    attempts: int
    kind: str = "alert"
    execution_id: int | None = None
    approval_id: str | None = None


def _claim_query(*, verify: bool) -> ReturningUpdate[Any]:
    kind = jobs.c.kind == "verify" if verify else jobs.c.kind != "verify"
    due = (
        select(jobs.c.id)
        .where(jobs.c.status == "pending", jobs.c.not_before <= bindparam("now"), kind)
        .order_by(jobs.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(jobs)
        .where(jobs.c.id.in_(due))
        .values(
            status="running",
            claimed_by=bindparam("worker"),
            claimed_at=bindparam("now"),
            attempts=jobs.c.attempts + 1,
        )
        .returning(
            jobs.c.id,
            jobs.c.incident_id,
            jobs.c.attempts,
            jobs.c.kind,
            jobs.c.execution_id,
            jobs.c.approval_id,
        )
    )


# Built once: the claim is on every alert's path to its action.
_CLAIM_WORK = _claim_query(verify=False)
_CLAIM_VERIFY = _claim_query(verify=True)
_ENQUEUE = insert(jobs)
_RESCHEDULE = (
    update(jobs)
    .where(jobs.c.id.in_(bindparam("ids", expanding=True)))
    .values(status="pending", not_before=bindparam("b_not_before"), attempts=0, claimed_by=None)
)
_FINISH = (
    update(jobs)
    .where(jobs.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_now"),
        last_error=bindparam("b_error"),
    )
)


async def claim(
    engine: AsyncEngine, worker: str, now: datetime, limit: int, *, verify: bool = False
) -> list[Job]:
    """Mark up to ``limit`` due jobs as running for ``worker`` and return them, oldest
    first: verify looks when ``verify``, else everything else (alerts, approvals)."""
    stmt = _CLAIM_VERIFY if verify else _CLAIM_WORK
    async with engine.begin() as conn:
        rows = (await conn.execute(stmt, {"now": now, "limit": limit, "worker": worker})).all()
    return sorted((Job(**r._asdict()) for r in rows), key=lambda j: j.id)


async def enqueue(
    conn: AsyncConnection,
    incident_id: str,
    kind: str,
    now: datetime,
    *,
    not_before: datetime | None = None,
    execution_id: int | None = None,
    approval_id: str | None = None,
) -> None:
    """Queue follow-up work: ``verify`` an execution, run an ``approved`` runbook, or
    ``escalate`` after an approval expired."""
    await conn.execute(
        _ENQUEUE,
        {
            "incident_id": incident_id,
            "kind": kind,
            "execution_id": execution_id,
            "approval_id": approval_id,
            "status": "pending",
            "attempts": 0,
            "not_before": not_before or now,
            "created_at": now,
        },
    )


async def reschedule(conn: AsyncConnection, job_ids: Sequence[int], not_before: datetime) -> None:
    """Put verify jobs back for another look later; waiting is not a failed attempt."""
    await conn.execute(_RESCHEDULE, {"ids": list(job_ids), "b_not_before": not_before})


async def finish(
    conn: AsyncConnection, job_ids: Sequence[int], now: datetime, *, error: str | None = None
) -> None:
    """Close jobs: done, or failed for good when ``error`` is given (caller commits)."""
    status = "failed" if error else "done"
    await conn.execute(
        _FINISH, {"ids": list(job_ids), "b_status": status, "b_now": now, "b_error": error}
    )


async def retry_later(engine: AsyncEngine, job_id: int, not_before: datetime, error: str) -> None:
    """Hand a job back to the queue after a transient failure."""
    async with engine.begin() as conn:
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(status="pending", not_before=not_before, last_error=error, claimed_by=None)
        )


async def requeue_stale(engine: AsyncEngine, claimed_before: datetime) -> int:
    """Return jobs whose worker died (claimed before the cut-off) to the queue."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(jobs)
            .where(jobs.c.status == "running", jobs.c.claimed_at < claimed_before)
            .values(status="pending", claimed_by=None)
        )
    return result.rowcount


async def depth(engine: AsyncEngine) -> int:
    """Jobs not yet finished (pending or running)."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(jobs).where(jobs.c.status.in_(("pending", "running")))
        )
    return int(count or 0)
