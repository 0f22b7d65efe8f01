"""Assembles the stages into the one path every alert instance takes.

Read top to bottom, ``process`` is the whole pipeline. Each stage returns events; the
unit of work commits them together with the jobs' completion, and the record stage
counts and logs what was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from remediator.pipeline.unit import WorkUnit
from remediator.runbooks.loader import LoadedRunbook, RunbookSet
from remediator.settings import GuardSettings
from remediator.store import jobs, timeline
from remediator.store.jobs import Job
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

    async def process(self, batch: Sequence[Job]) -> None:
        """Run jobs through every stage and mark them done, all or nothing."""
        unit = WorkUnit(self._engine, self._clock, durable=not self._policy.dry_run)
        async with unit:
            instances = await timeline.load_instances(unit.conn, [j.incident_id for j in batch])
            for job in batch:
                instance = instances.get(job.incident_id)
                if instance is not None:
                    await self._alert(unit, instance)
            await jobs.finish(unit.conn, [j.id for j in batch], self._clock())
        self._recorder.observe(unit.written)

    async def _alert(self, unit: WorkUnit, instance: AlertInstance) -> None:
        if not instance.is_open:
            unit.add(
                instance.incident_id,
                NewEvent(
                    Stage.MATCH,
                    EventKind.SKIPPED,
                    "alert resolved before it was processed",
                    reason=BlockReason.ALERT_RESOLVED,
                ),
            )
            return
        found, events = match(self._runbooks(), instance)
        unit.add(instance.incident_id, *events)
        for runbook in found:
            await self._runbook(unit, runbook, instance)

    async def _runbook(
        self, unit: WorkUnit, runbook: LoadedRunbook, instance: AlertInstance
    ) -> None:
        incident, name = instance.incident_id, runbook.spec.name
        try:
            planned = plan(runbook, instance, self._actions)
        except PlanError as exc:
            unit.add(
                incident,
                NewEvent(Stage.PLAN, EventKind.BLOCKED, str(exc), runbook=name, reason=exc.reason),
            )
            return
        unit.add(
            incident,
            NewEvent(
                Stage.PLAN,
                EventKind.PLANNED,
                f"{len(planned.steps)} step(s) on {planned.target}",
                runbook=name,
                data=planned.summary(),
            ),
        )
        for step in planned.steps:
            decision = guard.check(planned, step, self._policy)
            if not decision.allowed:
                unit.add(
                    incident,
                    NewEvent(
                        Stage.GUARD,
                        EventKind.BLOCKED,
                        decision.message,
                        runbook=name,
                        reason=decision.reason,
                        data={"action": step.action.name},
                    ),
                )
                return
            event = await execute(unit, incident, planned, step, decision, self._clock)
            unit.add(incident, event)
            if event.kind not in (EventKind.DRY_RUN, EventKind.EXECUTED):
                return
