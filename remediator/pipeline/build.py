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
from remediator.pipeline.execute import Runtime, execute
from remediator.pipeline.match import match
from remediator.pipeline.plan import Plan, PlannedStep, plan
from remediator.pipeline.record import Recorder
from remediator.pipeline.unit import WorkUnit
from remediator.pipeline.verify import verify
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
        runtime: Runtime,
    ) -> None:
        self._engine = engine
        self._runbooks = runbooks
        self._actions = actions
        self._mutating = frozenset(name for name, a in actions.items() if a.mutates)
        self._policy = policy
        self._recorder = recorder
        self._rt = runtime

    @property
    def _clock(self) -> Callable[[], datetime]:
        return self._rt.clock

    async def process(self, batch: Sequence[Job]) -> None:
        """Run jobs through every stage and mark them done, all or nothing."""
        unit = WorkUnit(self._engine, self._clock, durable=not self._policy.dry_run)
        waiting: list[int] = []
        async with unit:
            instances = await timeline.load_instances(unit.conn, [j.incident_id for j in batch])
            for job in batch:
                instance = instances.get(job.incident_id)
                if job.kind == "verify" and job.execution_id is not None:
                    if await self._verify(unit, job.execution_id, instance):
                        waiting.append(job.id)
                elif instance is not None:
                    await self._alert(unit, instance)
            done = [j.id for j in batch if j.id not in waiting]
            await jobs.finish(unit.conn, done, self._clock())
            if waiting:
                await jobs.reschedule(unit.conn, waiting, self._clock() + self._rt.verify_interval)
        self._recorder.observe(unit.written)

    async def _alert(self, unit: WorkUnit, instance: AlertInstance) -> None:
        if not instance.is_open:
            unit.add(
                instance.incident_id,
                NewEvent(
                    Stage.MATCH,
                    EventKind.CANCELLED,
                    "alert resolved before it was processed; nothing done",
                    reason=BlockReason.ALERT_RESOLVED,
                ),
            )
            return
        found, events = match(self._runbooks(), instance)
        unit.add(instance.incident_id, *events)
        for runbook in found:
            await self._runbook(unit, runbook, instance)

    def _plan(self, unit: WorkUnit, runbook: LoadedRunbook, instance: AlertInstance) -> Plan | None:
        try:
            return plan(runbook, instance, self._actions)
        except PlanError as exc:
            unit.add(
                instance.incident_id,
                NewEvent(
                    Stage.PLAN,
                    EventKind.BLOCKED,
                    str(exc),
                    runbook=runbook.spec.name,
                    reason=exc.reason,
                ),
            )
            return None

    async def _runbook(
        self, unit: WorkUnit, runbook: LoadedRunbook, instance: AlertInstance
    ) -> None:
        planned = self._plan(unit, runbook, instance)
        if planned is None:
            return
        unit.add(
            instance.incident_id,
            NewEvent(
                Stage.PLAN,
                EventKind.PLANNED,
                f"{len(planned.steps)} step(s) on {planned.target}",
                runbook=runbook.spec.name,
                data=planned.summary(),
            ),
        )
        if not await self._steps(unit, instance.incident_id, planned, planned.steps):
            await self._escalate(unit, instance, planned)

    async def _steps(
        self, unit: WorkUnit, incident_id: str, planned: Plan, steps: Sequence[PlannedStep]
    ) -> bool:
        """Run steps in order until one does not go through; False if one failed."""
        for step in steps:
            decision = await guard.decide(
                unit.conn, incident_id, planned, step, self._policy, self._mutating, self._clock()
            )
            if decision.breaker_change:
                unit.add(incident_id, _breaker_event(decision.breaker_change))
            outcome = await execute(unit, self._rt, incident_id, planned, step, decision)
            unit.add(incident_id, outcome.event)
            if outcome.failed:
                return False
            if not outcome.ok:
                return True
        return True

    async def _verify(
        self, unit: WorkUnit, execution_id: int, instance: AlertInstance | None
    ) -> bool:
        """One look at an applied execution; True when it must be looked at again."""
        verdict = await verify(unit, self._rt, self._actions, execution_id, instance)
        if verdict.event is not None and instance is not None:
            unit.add(instance.incident_id, verdict.event)
        if verdict.failed and instance is not None:
            found = self._runbooks().named(verdict.runbook)
            planned = self._plan(unit, found, instance) if found else None
            if planned is not None:
                await self._escalate(unit, instance, planned)
        return verdict.again

    async def _escalate(self, unit: WorkUnit, instance: AlertInstance, planned: Plan) -> None:
        if not planned.escalate:
            return
        unit.add(
            instance.incident_id,
            NewEvent(
                Stage.ESCALATE,
                EventKind.PLANNED,
                f"escalating: {len(planned.escalate)} step(s)",
                runbook=planned.runbook.spec.name,
            ),
        )
        await self._steps(unit, instance.incident_id, planned, planned.escalate)


def _breaker_event(change: str) -> NewEvent:
    opened = change.startswith("opened")
    return NewEvent(
        Stage.GUARD,
        EventKind.CIRCUIT_OPENED if opened else EventKind.CIRCUIT_CLOSED,
        f"circuit breaker {change}",
        reason=BlockReason.CIRCUIT_OPEN if opened else None,
    )
