"""Stage: write events to the incident timeline, and count and log them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.models.events import EventKind
from remediator.observability.metrics import Metrics
from remediator.store import timeline
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)

_RESULT = {
    EventKind.DRY_RUN: "dry_run",
    EventKind.EXECUTED: "succeeded",
    EventKind.FAILED: "failed",
}


class Recorder:
    def __init__(
        self, engine: AsyncEngine, metrics: Metrics, clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._clock = clock

    async def record(self, incident_id: str, events: Sequence[NewEvent]) -> None:
        await timeline.append(self._engine, incident_id, events, self._clock())
        for event in events:
            self._count(event)
            log.info(
                event.kind,
                stage=event.stage,
                runbook=event.runbook,
                reason=event.reason,
                message=event.message,
            )

    def _count(self, event: NewEvent) -> None:
        m = self._metrics
        if event.kind == EventKind.MATCHED and event.runbook:
            m.matches.labels(event.runbook).inc()
        elif event.kind == EventKind.NO_MATCH:
            m.no_match.inc()
        elif event.kind == EventKind.BLOCKED and event.reason:
            m.blocks.labels(event.reason).inc()
        elif event.kind in _RESULT:
            m.actions.labels(event.data.get("action", ""), _RESULT[EventKind(event.kind)]).inc()
