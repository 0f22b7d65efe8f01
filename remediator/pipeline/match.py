"""Stage: which runbooks take this alert."""

from __future__ import annotations

from remediator.models.alert import AlertInstance
from remediator.models.events import EventKind, Stage
from remediator.runbooks.loader import LoadedRunbook, RunbookSet
from remediator.store.timeline import NewEvent


def match(
    runbooks: RunbookSet, instance: AlertInstance
) -> tuple[list[LoadedRunbook], list[NewEvent]]:
    """The matching runbooks, and the events that say so."""
    found = runbooks.match(instance.labels)
    if not found:
        return [], [
            NewEvent(
                Stage.MATCH,
                EventKind.NO_MATCH,
                f"no runbook matches ({len(runbooks.runbooks)} loaded)",
            )
        ]
    return found, [
        NewEvent(
            Stage.MATCH,
            EventKind.MATCHED,
            f"matched runbook {rb.ident}",
            runbook=rb.spec.name,
            data={"version": rb.spec.version, "file": rb.path.name, "commit": runbooks.commit},
        )
        for rb in found
    ]
