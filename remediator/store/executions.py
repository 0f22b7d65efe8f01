"""Executions: the exactly-once ledger of steps taken (or simulated) per alert instance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.store.tables import executions


@dataclass(frozen=True)
class ExecutionKey:
    incident_id: str
    runbook: str
    version: str
    step: int
    target: str


async def begin(
    engine: AsyncEngine, key: ExecutionKey, action: str, *, dry_run: bool, now: datetime
) -> int | None:
    """Record intent; None when this exact step already ran for this alert instance."""
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                insert(executions).values(
                    incident_id=key.incident_id,
                    runbook=key.runbook,
                    version=key.version,
                    step=key.step,
                    target=key.target,
                    action=action,
                    dry_run=dry_run,
                    status="started",
                    created_at=now,
                    detail="",
                )
            )
    except IntegrityError:
        return None
    (execution_id,) = result.inserted_primary_key or (None,)
    return int(execution_id) if execution_id is not None else None


async def finish(
    engine: AsyncEngine, execution_id: int, status: str, detail: str, now: datetime
) -> None:
    """Record the outcome of a step begun with ``begin``."""
    async with engine.begin() as conn:
        await conn.execute(
            update(executions)
            .where(executions.c.id == execution_id)
            .values(status=status, detail=detail, finished_at=now)
        )
