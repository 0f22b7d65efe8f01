"""Executions: the exactly-once ledger of steps taken (or simulated) per alert instance.

Status of a row over its life:
  dry_run                            simulated, complete
  intent → applied → verified        a live cluster action
                  └→ verification_failed
  intent → failed | cancelled        it failed, or a restart found it unapplied and the
                                     guards no longer allowed it
  intent → done                      a live step with nothing to verify (notify)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remediator.store import dialect
from remediator.store.tables import executions

# Statuses of a step that did what it meant to (verification may still be pending).
WENT_THROUGH = frozenset({"dry_run", "applied", "verified", "done"})


@dataclass(frozen=True)
class ExecutionKey:
    incident_id: str
    runbook: str
    version: str
    step: int  # escalation steps are negative: -1, -2, ...
    target: str


@dataclass(frozen=True)
class Execution:
    id: int
    uid: str | None
    status: str
    incident_id: str
    runbook: str
    version: str
    step: int
    action: str
    target: str
    params: dict[str, Any]
    verify_deadline: datetime | None


# Built once per backend: constructing a statement per step cost more than executing it.
_BEGIN = dialect.per_backend(
    lambda upsert: upsert(executions).on_conflict_do_nothing().returning(executions.c.id)
)
_COLUMNS = (
    executions.c.id,
    executions.c.uid,
    executions.c.status,
    executions.c.incident_id,
    executions.c.runbook,
    executions.c.version,
    executions.c.step,
    executions.c.action,
    executions.c.target,
    executions.c.params,
    executions.c.verify_deadline,
)
_FINISH = (
    update(executions)
    .where(executions.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        detail=bindparam("b_detail"),
        finished_at=bindparam("b_finished"),
        verify_deadline=bindparam("b_deadline"),
    )
)


async def begin(
    conn: AsyncConnection,
    key: ExecutionKey,
    action: str,
    *,
    dry_run: bool,
    status: str,
    detail: str,
    namespace: str,
    params: dict[str, Any],
    uid: str | None,
    now: datetime,
) -> int | None:
    """Record a step; None when this exact step was already recorded for this instance.

    A live step is begun with status ``intent`` and finished after it ran; a dry run is
    recorded complete in one go.
    """
    result = await conn.execute(
        _BEGIN[conn.dialect.name],
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
            "finished_at": None if status == "intent" else now,
            "uid": uid,
            "namespace": namespace,
            "params": params,
        },
    )
    execution_id: int | None = result.scalar_one_or_none()
    return execution_id


async def find(conn: AsyncConnection, key: ExecutionKey) -> Execution | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                executions.c.incident_id == key.incident_id,
                executions.c.runbook == key.runbook,
                executions.c.version == key.version,
                executions.c.step == key.step,
                executions.c.target == key.target,
            )
        )
    ).first()
    return Execution(**row._asdict()) if row else None


async def get(conn: AsyncConnection, execution_id: int) -> Execution | None:
    row = (await conn.execute(select(*_COLUMNS).where(executions.c.id == execution_id))).first()
    return Execution(**row._asdict()) if row else None


async def unsettled(conn: AsyncConnection, incident_id: str) -> list[Execution]:
    """The incident's steps begun but never finished: a process died in between."""
    rows = await conn.execute(
        select(*_COLUMNS)
        .where(executions.c.incident_id == incident_id, executions.c.status == "intent")
        .order_by(executions.c.id)
    )
    return [Execution(**row._asdict()) for row in rows]


async def finish(
    conn: AsyncConnection,
    execution_id: int,
    status: str,
    detail: str,
    now: datetime,
    *,
    verify_deadline: datetime | None = None,
) -> None:
    """Move a begun step on: to ``applied`` (with a verify deadline) or a final status."""
    await conn.execute(
        _FINISH,
        {
            "b_id": execution_id,
            "b_status": status,
            "b_detail": detail,
            "b_finished": None if status == "applied" else now,
            "b_deadline": verify_deadline,
        },
    )
