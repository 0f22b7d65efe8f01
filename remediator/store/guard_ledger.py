"""What the guards need to know, read from the store inside the deciding transaction.

Cooldowns, run windows, the per-target lock and the breaker's statistics are all
derived from the executions ledger, so they survive restarts and can never drift from
what was actually done. Only the token bucket and the breaker's open/closed state are
kept separately, in ``guard_state``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from remediator.store import dialect
from remediator.store.db import GUARD_LOCK
from remediator.store.tables import executions, guard_state

IN_FLIGHT = ("intent", "applied")
FAILED = ("failed", "verification_failed")
FINISHED = ("verified", *FAILED)


@dataclass(frozen=True)
class Scope:
    """The step being decided, as the ledger sees it."""

    incident_id: str
    runbook: str
    target: str  # RenderedTarget.key
    namespace: str
    dry_run: bool
    mutating_actions: Collection[str]


@dataclass(frozen=True)
class Facts:
    last_run: datetime | None  # this runbook on this target, other incidents
    runs: int  # distinct incidents this runbook acted for within its max_runs window
    runs_in_namespace: int
    busy: str | None  # an unfinished live execution on the target, described
    targets: int  # distinct targets touched within the breaker window
    target_touched: bool  # whether this target is among them
    finished: int
    failed: int
    bucket: dict[str, Any]  # stored token bucket; empty when never used
    breaker: dict[str, Any]  # stored breaker state; empty when never opened


def bucket_name(dry_run: bool) -> str:
    return "token_bucket.dry_run" if dry_run else "token_bucket"


def breaker_name(dry_run: bool) -> str:
    return "breaker.dry_run" if dry_run else "breaker"


async def serialize(conn: AsyncConnection) -> None:
    """On PostgreSQL, take the guard lock until this transaction ends, so two replicas
    never both read the same free slot; SQLite has one writer already."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GUARD_LOCK})


async def facts(
    conn: AsyncConnection,
    scope: Scope,
    now: datetime,
    *,
    runs_window: timedelta | None,
    namespace_window: timedelta | None,
    breaker_window: timedelta,
) -> Facts:
    e = executions.c
    acted = and_(
        e.dry_run == scope.dry_run,
        e.action.in_(list(scope.mutating_actions)),
        e.status != "cancelled",
        e.step >= 0,
    )
    others = and_(acted, e.incident_id != scope.incident_id)
    last_run = await conn.scalar(
        select(func.max(e.created_at)).where(
            others, e.runbook == scope.runbook, e.target == scope.target
        )
    )
    runs = await _count_incidents(conn, runs_window, now, and_(others, e.runbook == scope.runbook))
    runs_ns = await _count_incidents(
        conn,
        namespace_window,
        now,
        and_(others, e.runbook == scope.runbook, e.namespace == scope.namespace),
    )
    busy_row = (
        await conn.execute(
            select(e.runbook, e.incident_id, e.status)
            .where(
                e.target == scope.target,
                e.dry_run.is_(False),
                e.status.in_(IN_FLIGHT),
                e.incident_id != scope.incident_id,
            )
            .limit(1)
        )
    ).first()
    since = now - breaker_window
    touched = set(
        (await conn.scalars(select(e.target).distinct().where(acted, e.created_at >= since))).all()
    )
    stats = (
        await conn.execute(
            select(
                func.count().filter(e.status.in_(FINISHED)),
                func.count().filter(e.status.in_(FAILED)),
            ).where(acted, e.created_at >= since)
        )
    ).one()
    state = await _states(conn, bucket_name(scope.dry_run), breaker_name(scope.dry_run))
    return Facts(
        last_run=last_run,
        runs=runs,
        runs_in_namespace=runs_ns,
        busy=(
            f"runbook {busy_row.runbook} ({busy_row.status}, incident {busy_row.incident_id})"
            if busy_row
            else None
        ),
        targets=len(touched),
        target_touched=scope.target in touched,
        finished=int(stats[0]),
        failed=int(stats[1]),
        bucket=state.get(bucket_name(scope.dry_run), {}),
        breaker=state.get(breaker_name(scope.dry_run), {}),
    )


async def _count_incidents(
    conn: AsyncConnection,
    window: timedelta | None,
    now: datetime,
    where: ColumnElement[bool],
) -> int:
    if window is None:
        return 0
    e = executions.c
    count = await conn.scalar(
        select(func.count(e.incident_id.distinct())).where(where, e.created_at >= now - window)
    )
    return int(count or 0)


async def _states(conn: AsyncConnection, *names: str) -> dict[str, dict[str, Any]]:
    rows = await conn.execute(
        select(guard_state.c.name, guard_state.c.value).where(guard_state.c.name.in_(names))
    )
    return {r.name: dict(r.value) for r in rows}


async def save_state(
    conn: AsyncConnection, name: str, value: dict[str, Any], now: datetime
) -> None:
    stmt = dialect.insert(conn, guard_state).values(name=name, value=value, updated_at=now)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[guard_state.c.name],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
    )
