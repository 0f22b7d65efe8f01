"""What the guards need to know, read from the store inside the deciding transaction.

Cooldowns, run windows, the per-target lock and the breaker's statistics are all
derived from the executions ledger, so they survive restarts and can never drift from
what was actually done. Only the token bucket and the breaker's open/closed state are
kept separately, in ``guard_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    Table,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    text,
)
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
    namespace_budget: int  # distinct incidents any runbook acted for in the namespace
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


def _one_of(column: ColumnElement[str], values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN (values)`` with the values fixed in the statement. An IN over a
    parameter list is re-rendered into SQL on every execution; in the facts query that
    was a third of its cost."""
    return or_(false(), *(column == v for v in values))


@lru_cache(maxsize=8)
def _facts_query(actions: frozenset[str]) -> Select[Any]:
    """Every fact in one statement, built once per set of mutating actions (a server
    has one): it runs for each mutating step, and a query per fact (each with its own
    round trip and statement construction) was the largest share of an action's
    latency and of the storm's CPU."""
    e = executions.c
    acted = and_(
        e.dry_run == bindparam("dry_run"),
        _one_of(e.action, sorted(actions)),
        e.status != "cancelled",
        e.step >= 0,
    )
    others = and_(acted, e.incident_id != bindparam("incident"), e.runbook == bindparam("runbook"))
    in_window = and_(acted, e.created_at >= bindparam("breaker_since"))

    def incidents_since(name: str, *where: ColumnElement[bool]) -> ScalarSelect[Any]:
        return (
            select(func.count(e.incident_id.distinct()))
            .where(others, e.created_at >= bindparam(name), *where)
            .scalar_subquery()
        )

    def state(name: str) -> ScalarSelect[Any]:
        return (
            select(guard_state.c.value)
            .where(guard_state.c.name == bindparam(name))
            .scalar_subquery()
        )

    # The breaker's statistics in one pass over its window (one aggregate row), not one
    # scan of the window per figure.
    window = (
        select(
            func.count(e.target.distinct()).label("targets"),
            func.count(case((e.target == bindparam("target"), 1))).label("target_touched"),
            func.count(case((_one_of(e.status, FINISHED), 1))).label("finished"),
            func.count(case((_one_of(e.status, FAILED), 1))).label("failed"),
        )
        .where(in_window)
        .subquery()
    )
    busy = (
        select(e.runbook + " (" + e.status + ", incident " + e.incident_id + ")")
        .where(
            e.target == bindparam("target"),
            e.dry_run.is_(False),
            _one_of(e.status, IN_FLIGHT),
            e.incident_id != bindparam("incident"),
        )
        .limit(1)
        .scalar_subquery()
    )
    return select(
        select(func.max(e.created_at))
        .where(others, e.target == bindparam("target"))
        .scalar_subquery()
        .label("last_run"),
        incidents_since("runs_since").label("runs"),
        incidents_since("namespace_since", e.namespace == bindparam("namespace")).label(
            "runs_in_namespace"
        ),
        select(func.count(e.incident_id.distinct()))
        .where(
            acted,
            e.incident_id != bindparam("incident"),
            e.namespace == bindparam("namespace"),
            e.created_at >= bindparam("budget_since"),
        )
        .scalar_subquery()
        .label("namespace_budget"),
        busy.label("busy"),
        window.c.targets,
        window.c.target_touched,
        window.c.finished,
        window.c.failed,
        state("bucket_name").label("bucket"),
        state("breaker_name").label("breaker"),
    ).select_from(window)


_NEVER = datetime(9999, 1, 1, tzinfo=UTC)  # the start of a window that counts nothing


async def facts(
    conn: AsyncConnection,
    scope: Scope,
    now: datetime,
    *,
    runs_window: timedelta | None,
    namespace_window: timedelta | None,
    budget_window: timedelta | None,
    breaker_window: timedelta,
) -> Facts:
    row = (
        await conn.execute(
            _facts_query(frozenset(scope.mutating_actions)),
            {
                "dry_run": scope.dry_run,
                "incident": scope.incident_id,
                "runbook": scope.runbook,
                "target": scope.target,
                "namespace": scope.namespace,
                "runs_since": now - runs_window if runs_window else _NEVER,
                "namespace_since": now - namespace_window if namespace_window else _NEVER,
                "budget_since": now - budget_window if budget_window else _NEVER,
                "breaker_since": now - breaker_window,
                "bucket_name": bucket_name(scope.dry_run),
                "breaker_name": breaker_name(scope.dry_run),
            },
        )
    ).one()
    return Facts(
        last_run=row.last_run,
        runs=int(row.runs or 0),
        runs_in_namespace=int(row.runs_in_namespace or 0),
        namespace_budget=int(row.namespace_budget or 0),
        busy=f"runbook {row.busy}" if row.busy else None,
        targets=int(row.targets or 0),
        target_touched=bool(row.target_touched),
        finished=int(row.finished or 0),
        failed=int(row.failed or 0),
        bucket=dict(row.bucket or {}),
        breaker=dict(row.breaker or {}),
    )


async def states(conn: AsyncConnection, names: Collection[str]) -> dict[str, dict[str, Any]]:
    """Stored guard states by name, read without the guard lock."""
    rows = await conn.execute(
        select(guard_state.c.name, guard_state.c.value).where(guard_state.c.name.in_(names))
    )
    return {row.name: dict(row.value or {}) for row in rows}


def _save(upsert: Callable[[Table], dialect.Upsert]) -> dialect.Upsert:
    stmt = upsert(guard_state)
    return stmt.on_conflict_do_update(
        index_elements=[guard_state.c.name],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )


_SAVE = dialect.per_backend(_save)


async def save_state(
    conn: AsyncConnection, name: str, value: dict[str, Any], now: datetime
) -> None:
    await conn.execute(_SAVE[conn.dialect.name], {"name": name, "value": value, "updated_at": now})
