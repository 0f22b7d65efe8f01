"""Persist webhook notifications: alert instances, incidents, events and work items.

The webhook handler awaits ``IngestWriter.write`` and answers 200 only once the rows
are committed. One writer task commits whatever requests are waiting in one
transaction (group commit), so a burst from Alertmanager costs one fsync, not one per
request. Deduplication on ``(fingerprint, startsAt)`` happens inside that transaction.

When the worker waits idle, the writer inserts the new work items already claimed by it
and hands them over after the commit: the alert's path to its action then has no claim
round trip. Everything else is queued as ``pending`` for any worker to claim.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remediator.errors import StoreUnavailable
from remediator.models.alert import Alert, Notification
from remediator.models.events import EventKind, IncidentStatus, Stage
from remediator.models.ids import new_id
from remediator.store.db import durable_transaction
from remediator.store.jobs import Job
from remediator.store.tables import alerts, events, incidents, jobs

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
MAX_BATCH = 256
CONFLICT_RETRIES = 3


_KNOWN = select(
    alerts.c.id, alerts.c.incident_id, alerts.c.fingerprint, alerts.c.starts_at, alerts.c.status
).where(alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)))

_Pending = tuple[Notification, "asyncio.Future[IngestResult]"]


class Claimant(Protocol):
    """A worker that takes new work straight from the writer while it waits idle."""

    id: str

    def free_slots(self) -> int:
        """How many new work items it would take now (0: leave them queued)."""
        ...

    def hand(self, claimed: list[Job]) -> None:
        """Work items committed as claimed by it."""
        ...


@dataclass
class IngestResult:
    """What one notification changed; the caller turns it into metrics."""

    received: int = 0
    received_resolved: int = 0  # of ``received``: first seen already resolved
    renotified: int = 0
    resolved: int = 0


@dataclass
class _Known:
    alert_id: str
    incident_id: str
    status: str


@dataclass
class _Rows:
    incidents: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    renotified: list[dict[str, Any]] = field(default_factory=list)
    resolved_alerts: list[dict[str, Any]] = field(default_factory=list)
    resolved_incidents: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    claimed: list[dict[str, Any]] = field(default_factory=list)


class IngestWriter:
    """Single writer task with group commit; see the module docstring."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._claimant: Claimant | None = None
        # None is the stop sentinel, queued behind everything already accepted.
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()  # set while no webhook waits for a commit
        self.idle.set()

    def after_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each commit (the worker wakes on new work)."""
        self._listeners.append(listener)

    def hand_to(self, claimant: Claimant) -> None:
        """Give new work items to ``claimant`` whenever it has free slots."""
        self._claimant = claimant

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-writer")

    async def stop(self, grace: float = 10.0) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def write(self, notification: Notification) -> IngestResult:
        """Persist ``notification``; raises StoreUnavailable if it was not committed."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self.idle.clear()
        await self._queue.put((notification, future))
        return await asyncio.shield(future)

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Pending] = []
            item = await self._queue.get()
            # Let handlers that are already runnable enqueue too: they share this commit.
            await asyncio.sleep(0)
            while item is not None:
                batch.append(item)
                if len(batch) >= MAX_BATCH or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if not batch:
                continue
            try:
                results, claimed = await self._commit([n for n, _ in batch])
            except Exception as exc:  # the writer must outlive any failure, or webhooks hang
                log.error("store_write_failed", error=str(exc), batch=len(batch), exc_info=True)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StoreUnavailable(str(exc)))
                if self._queue.empty():
                    self.idle.set()
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            if self._queue.empty():
                self.idle.set()
            if claimed and self._claimant is not None:
                self._claimant.hand(claimed)
            for listener in self._listeners:
                listener()

    async def _commit(self, batch: Sequence[Notification]) -> tuple[list[IngestResult], list[Job]]:
        taker = self._claimant
        for attempt in range(CONFLICT_RETRIES):
            claim = (taker.id, taker.free_slots()) if taker is not None else None
            try:
                async with durable_transaction(self._engine) as conn:
                    return await _write_batch(conn, batch, self._clock(), claim)
            except IntegrityError:
                # Another replica inserted the same instance first; re-read and retry.
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


async def _write_batch(
    conn: AsyncConnection,
    batch: Sequence[Notification],
    now: datetime,
    claim: tuple[str, int] | None = None,
) -> tuple[list[IngestResult], list[Job]]:
    """Write ``batch``; with ``claim`` (worker id, slots), up to that many new work items
    go in already claimed by that worker, and are returned."""
    known = await _load_known(conn, batch)
    rows = _Rows()
    results = [_plan_notification(n, known, rows, now) for n in batch]
    if claim is not None and claim[1] > 0:
        worker, slots = claim
        rows.claimed, rows.jobs = rows.jobs[:slots], rows.jobs[slots:]
        for row in rows.claimed:
            row.update(status="running", claimed_by=worker, claimed_at=now, attempts=1)
    return results, await _flush(conn, rows)


async def _load_known(
    conn: AsyncConnection, batch: Sequence[Notification]
) -> dict[tuple[str, datetime], _Known]:
    fingerprints = {a.fingerprint for n in batch for a in n.alerts}
    if not fingerprints:
        return {}
    return {
        (r.fingerprint, r.starts_at): _Known(r.id, r.incident_id, r.status)
        for r in await conn.execute(_KNOWN, {"fingerprints": list(fingerprints)})
    }


def _plan_notification(
    n: Notification, known: dict[tuple[str, datetime], _Known], rows: _Rows, now: datetime
) -> IngestResult:
    result = IngestResult()
    for alert in n.alerts:
        key = (alert.fingerprint, alert.startsAt)
        seen = known.get(key)
        if seen is None:
            known[key] = _new_instance(n, alert, rows, now)
            result.received += 1
            if alert.status == "resolved":
                result.received_resolved += 1
                result.resolved += 1
        elif seen.status == "firing" and alert.status == "resolved":
            _resolve(seen, alert, rows, now)
            result.resolved += 1
        else:
            # Same instance again: repeat_interval, an HA peer, or a late firing copy
            # after resolution. Counted and recorded; nothing runs again.
            rows.renotified.append({"b_id": seen.alert_id, "b_now": now})
            rows.events.append(
                _event(
                    seen.incident_id,
                    now,
                    EventKind.RENOTIFIED,
                    f"re-notified ({alert.status})",
                    {"status": alert.status},
                )
            )
            result.renotified += 1
    return result


def _new_instance(n: Notification, alert: Alert, rows: _Rows, now: datetime) -> _Known:
    incident_id = new_id()
    resolved = alert.status == "resolved"
    status = IncidentStatus.RESOLVED if resolved else IncidentStatus.OPEN
    rows.incidents.append(
        {
            "id": incident_id,
            "status": status,
            "alertname": alert.labels.get("alertname", ""),
            "namespace": alert.labels.get("namespace", ""),
            "severity": alert.labels.get("severity", ""),
            "summary": alert.annotations.get("summary", ""),
            "external_url": n.externalURL,
            "group_key": n.groupKey,
            "created_at": now,
            "updated_at": now,
            "resolved_at": now if resolved else None,
        }
    )
    alert_id = new_id()
    rows.alerts.append(
        {
            "id": alert_id,
            "incident_id": incident_id,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.startsAt,
            "ends_at": alert.ends_at,
            "status": alert.status,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "generator_url": alert.generatorURL,
            "notifications": 1,
            "first_seen": now,
            "last_seen": now,
        }
    )
    rows.events.append(
        _event(
            incident_id,
            now,
            EventKind.RECEIVED,
            f"{alert.status} alert received",
            {"fingerprint": alert.fingerprint, "receiver": n.receiver},
        )
    )
    if resolved:
        rows.events.append(_event(incident_id, now, EventKind.RESOLVED, "alert resolved", {}))
    else:
        rows.jobs.append(
            {
                "incident_id": incident_id,
                "status": "pending",
                "attempts": 0,
                "not_before": now,
                "created_at": now,
            }
        )
    return _Known(alert_id, incident_id, alert.status)


def _resolve(seen: _Known, alert: Alert, rows: _Rows, now: datetime) -> None:
    seen.status = "resolved"
    rows.resolved_alerts.append({"b_id": seen.alert_id, "b_now": now, "b_ends": alert.ends_at})
    rows.resolved_incidents.append({"b_id": seen.incident_id, "b_now": now})
    rows.events.append(_event(seen.incident_id, now, EventKind.RESOLVED, "alert resolved", {}))


def _event(
    incident_id: str, now: datetime, kind: EventKind, message: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": now,
        "stage": Stage.INGEST,
        "kind": kind,
        "runbook": None,
        "reason": None,
        "message": message,
        "data": data,
    }


async def _flush(conn: AsyncConnection, rows: _Rows) -> list[Job]:
    """Insert ``rows``; the claimed work items, which go in first, are returned."""
    if rows.incidents:
        await conn.execute(insert(incidents), rows.incidents)
        await conn.execute(insert(alerts), rows.alerts)
    if rows.renotified:
        await conn.execute(_RENOTIFIED, rows.renotified)
    if rows.resolved_alerts:
        await conn.execute(_RESOLVE_ALERT, rows.resolved_alerts)
        await conn.execute(_RESOLVE_INCIDENT, rows.resolved_incidents)
    if rows.events:
        await conn.execute(insert(events), rows.events)
    claimed: list[Job] = []
    if rows.claimed:
        returned = await conn.execute(_INSERT_CLAIMED, rows.claimed)
        claimed = sorted((Job(**r._asdict()) for r in returned), key=lambda j: j.id)
    if rows.jobs:
        await conn.execute(insert(jobs), rows.jobs)
    return claimed


# Built once: constructing a statement costs more than running it.
_RENOTIFIED = (
    update(alerts)
    .where(alerts.c.id == bindparam("b_id"))
    .values(notifications=alerts.c.notifications + 1, last_seen=bindparam("b_now"))
)
_RESOLVE_ALERT = (
    update(alerts)
    .where(alerts.c.id == bindparam("b_id"))
    .values(status="resolved", last_seen=bindparam("b_now"), ends_at=bindparam("b_ends"))
)
_RESOLVE_INCIDENT = (
    update(incidents)
    .where(incidents.c.id == bindparam("b_id"))
    .values(
        status=IncidentStatus.RESOLVED,
        updated_at=bindparam("b_now"),
        resolved_at=bindparam("b_now"),
    )
)
_INSERT_CLAIMED = insert(jobs).returning(jobs.c.id, jobs.c.incident_id, jobs.c.attempts)
