"""Executions: the exactly-once ledger of steps taken (or simulated) per alert instance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from remediator.store.tables import executions


@dataclass(frozen=True)
class ExecutionKey:
    incident_id: str
    runbook: str
    version: str
    step: int
    target: str


# Built once: constructing a statement per step cost more than executing it.
_BEGIN: Insert = sqlite.insert(executions).on_conflict_do_nothing().returning(executions.c.id)


async def begin(
    conn: AsyncConnection,
    key: ExecutionKey,
    action: str,
    *,
    dry_run: bool,
    status: str,
    detail: str,
    now: datetime,
) -> int | None:
    """Record a step; None when this exact step was already recorded for this instance.

    A live step is begun with status ``started`` (intent) and finished after it ran; a
    dry run is recorded complete in one go.
    """
    result = await conn.execute(
        _BEGIN,
        {
            "incident_id": key.incident_id,
            "runbook": key.runbook,
            "version": key.version,
            "step": key.step,
            "target": key.target,
            "action": action,
            "dry_run": dry_run,
            "status": status,
            "created_at": now,
            "detail": detail,
            "finished_at": None if status == "started" else now,
        },
    )
    execution_id: int | None = result.scalar_one_or_none()
    return execution_id


async def finish(
    conn: AsyncConnection, execution_id: int, status: str, detail: str, now: datetime
) -> None:
    """Record the outcome of a step begun with status ``started``."""
    await conn.execute(
        update(executions)
        .where(executions.c.id == execution_id)
        .values(status=status, detail=detail, finished_at=now)
    )
