"""Stage: make recorded events visible to operators, as metrics and log lines.

Events are written to the timeline by the unit of work; this stage runs on what was
committed, so a rolled-back attempt is never counted. Each log line names its incident,
since one batch spans many.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from remediator.models.events import EventKind
from remediator.observability.metrics import Metrics
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)

_RESULT = {
    EventKind.DRY_RUN: "dry_run",
    EventKind.EXECUTED: "succeeded",
    EventKind.FAILED: "failed",
    EventKind.RECONCILED: "reconciled",
    EventKind.VERIFIED: "verified",
    EventKind.VERIFICATION_FAILED: "verification_failed",
}


class Recorder:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def observe(self, events: Sequence[tuple[str, NewEvent]]) -> None:
        for incident_id, event in events:
            self._count(event)
            log.info(
                event.kind,
                incident_id=incident_id,
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
        elif event.kind in (EventKind.CIRCUIT_OPENED, EventKind.CIRCUIT_CLOSED):
            m.circuit_open.set(1 if event.kind == EventKind.CIRCUIT_OPENED else 0)
        elif event.kind in _RESULT:
            m.actions.labels(event.data.get("action", ""), _RESULT[EventKind(event.kind)]).inc()
