"""Assembles the stages into the one path every alert instance takes.

Read top to bottom, ``process`` is the whole pipeline: each stage returns events, the
recorder appends them before the next stage runs, so a crash leaves an honest
timeline of how far the alert got.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.actions.registry import Registry
from remediator.errors import PlanError
from remediator.models.alert import AlertInstance
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.pipeline import guard
from remediator.pipeline.execute import execute
from remediator.pipeline.match import match
from remediator.pipeline.plan import plan
from remediator.pipeline.record import Recorder
from remediator.runbooks.loader import LoadedRunbook, RunbookSet
from remediator.settings import GuardSettings
from remediator.store import timeline
from remediator.store.timeline import NewEvent


class Pipeline:
    def __init__(
        self,
        engine: AsyncEngine,
        runbooks: Callable[[], RunbookSet],
        actions: Registry,
        policy: GuardSettings,
        recorder: Recorder,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._runbooks = runbooks
        self._actions = actions
        self._policy = policy
        self._recorder = recorder
        self._clock = clock

    async def process(self, incident_id: str) -> None:
        instance = await timeline.load_instance(self._engine, incident_id)
        if instance is None:
            return
        if not instance.is_open:
            await self._recorder.record(
                incident_id,
                [
                    NewEvent(
                        Stage.MATCH,
                        EventKind.SKIPPED,
                        "alert resolved before it was processed",
                        reason=BlockReason.ALERT_RESOLVED,
                    )
                ],
            )
            return
        found, events = match(self._runbooks(), instance)
        await self._recorder.record(incident_id, events)
        for runbook in found:
            await self._run(runbook, instance)

    async def _run(self, runbook: LoadedRunbook, instance: AlertInstance) -> None:
        record, name = self._recorder.record, runbook.spec.name
        try:
            planned = plan(runbook, instance, self._actions)
        except PlanError as exc:
            await record(
                instance.incident_id,
                [
                    NewEvent(
                        Stage.PLAN, EventKind.BLOCKED, str(exc), runbook=name, reason=exc.reason
                    )
                ],
            )
            return
        await record(
            instance.incident_id,
            [
                NewEvent(
                    Stage.PLAN,
                    EventKind.PLANNED,
                    f"{len(planned.steps)} step(s) on {planned.target}",
                    runbook=name,
                    data=planned.summary(),
                )
            ],
        )
        for step in planned.steps:
            decision = guard.check(planned, step, self._policy)
            if not decision.allowed:
                await record(
                    instance.incident_id,
                    [
                        NewEvent(
                            Stage.GUARD,
                            EventKind.BLOCKED,
                            decision.message,
                            runbook=name,
                            reason=decision.reason,
                            data={"action": step.action.name},
                        )
                    ],
                )
                return
            event = await execute(
                self._engine, instance.incident_id, planned, step, decision, self._clock()
            )
            await record(instance.incident_id, [event])
            if event.kind not in (EventKind.DRY_RUN, EventKind.EXECUTED):
                return
