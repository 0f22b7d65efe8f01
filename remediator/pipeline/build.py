"""Assembles the stages into the one path every alert instance takes.

Read top to bottom, ``process`` is the whole pipeline. Each stage returns events; the
unit of work commits them together with the jobs' completion, and the record stage
counts and logs what was committed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.actions.registry import Registry, mutating
from remediator.errors import PlanError
from remediator.models.alert import AlertInstance
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.pipeline import approve, guard
from remediator.pipeline.approve import Approver
from remediator.pipeline.context import OPENED, Capture, ContextStage
from remediator.pipeline.execute import Runtime, execute
from remediator.pipeline.match import match
from remediator.pipeline.plan import Plan, PlannedStep, plan
from remediator.pipeline.record import Recorder
from remediator.pipeline.recover import recover
from remediator.pipeline.unit import WorkUnit
from remediator.pipeline.verify import verify
from remediator.runbooks.loader import LoadedRunbook, RunbookSet
from remediator.settings import GuardSettings
from remediator.slack.client import SlackError
from remediator.store import approvals, jobs, timeline
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
        approver: Approver,
        context: ContextStage,
    ) -> None:
        self._engine = engine
        self._runbooks = runbooks
        self._actions = actions
        self._mutating = mutating(actions)
        self._policy = policy
        self._recorder = recorder
        self._rt = runtime
        self._approver = approver
        self._context = context

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
                # Each log line names the incident it is about, as for a single job.
                with structlog.contextvars.bound_contextvars(
                    incident_id=job.incident_id, job_id=job.id
                ):
                    await self._job(unit, job, instances.get(job.incident_id), waiting)
            done = [j.id for j in batch if j.id not in waiting]
            await jobs.finish(unit.conn, done, self._clock())
            if waiting:
                await jobs.reschedule(unit.conn, waiting, self._clock() + self._rt.verify_interval)
        self._recorder.observe(unit.written)
        await self._progress(unit.written)

    async def _job(
        self,
        unit: WorkUnit,
        job: Job,
        instance: AlertInstance | None,
        waiting: list[int],
    ) -> None:
        """One job's stages; a verify job that must look again joins ``waiting``."""
        if job.kind == "verify" and job.execution_id is not None:
            if await self._verify(unit, job.execution_id, instance):
                waiting.append(job.id)
            return
        if instance is None:
            return
        settled: frozenset[str] = frozenset()
        if job.attempts > 1:  # run before: a dead process may have left a step begun
            named = self._runbooks().named
            settled = await recover(unit, self._rt, self._actions, instance, named)
        if job.approval_id is not None:
            await self._after_approval(unit, job.kind, job.approval_id, instance)
        else:
            await self._alert(unit, instance, settled)

    async def _alert(
        self, unit: WorkUnit, instance: AlertInstance, settled: frozenset[str] = frozenset()
    ) -> None:
        """Match and run the runbooks; one in ``settled`` already acted on this alert under
        a version since replaced, so the new version does not act again."""
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
        if found:
            team = self._approver.router.team(found[0].spec.owner, instance.labels)
            await timeline.set_team(unit.conn, instance.incident_id, team)
        for runbook in found:
            if runbook.spec.name in settled:
                unit.add(
                    instance.incident_id,
                    NewEvent(
                        Stage.EXECUTE,
                        EventKind.SKIPPED,
                        f"runbook {runbook.spec.name} already acted on this alert under an "
                        f"earlier version; version {runbook.spec.version} does not run",
                        runbook=runbook.spec.name,
                        reason=BlockReason.ALREADY_EXECUTED,
                    ),
                )
                continue
            await self._runbook(unit, runbook, instance)

    def _plan(self, unit: WorkUnit, runbook: LoadedRunbook, instance: AlertInstance) -> Plan | None:
        try:
            planned = plan(runbook, instance, self._actions)
            team = self._approver.router.team(runbook.spec.owner, instance.labels)
            return dataclasses.replace(planned, team=team, incident_id=instance.incident_id)
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
        capture = self._context.start(planned, instance, OPENED)
        try:
            if planned.approval_required and not guard.is_dry_run(planned, self._policy):
                planned = await capture.join(unit, planned)
                await self._ask(
                    unit, planned, instance, "the runbook requires approval", planned.context
                )
                return
            ok = await self._steps(unit, instance, planned, planned.steps, capture=capture)
            planned = await capture.join(unit, planned)
            if not ok:
                await self._escalate(unit, instance, planned)
        finally:
            capture.cancel()

    async def _steps(
        self,
        unit: WorkUnit,
        instance: AlertInstance,
        planned: Plan,
        steps: Sequence[PlannedStep],
        *,
        approved: bool = False,
        capture: Capture | None = None,
    ) -> bool:
        """Run steps in order until one does not go through; False if one failed.

        A pending ``capture`` is joined after the first step's outcome (so it comes
        first on the timeline) or before a step that shows it to people (notify)."""
        incident_id = instance.incident_id
        for step in steps:
            if capture is not None and not step.action.mutates:
                planned = await capture.join(unit, planned)
            decision = await guard.decide(
                unit.conn,
                incident_id,
                planned,
                step,
                self._policy,
                self._mutating,
                self._clock(),
                approved=approved,
            )
            if decision.allowed and not decision.dry_run and step.action.mutates:
                self._context.forget(planned.target)
            outcome = await execute(unit, self._rt, incident_id, planned, step, decision)
            if capture is not None:
                planned = await capture.join(unit, planned)
            if decision.breaker_change:
                unit.add(incident_id, guard.breaker_event(decision.breaker_change))
            unit.add(incident_id, outcome.event)
            if outcome.failed:
                return False
            if not outcome.ok:
                breaker = decision.reason == BlockReason.CIRCUIT_OPEN
                if breaker and not approved and self._approver.can_ask(planned):
                    # When automatic actions are paused, a person may still decide.
                    await self._ask(
                        unit, planned, instance, "the circuit breaker is open", planned.context
                    )
                return True
        return True

    async def _ask(
        self,
        unit: WorkUnit,
        planned: Plan,
        instance: AlertInstance,
        reason: str,
        context: str = "",
    ) -> None:
        """Request a decision, unless static policy would refuse the steps anyway."""
        incident_id, name = instance.incident_id, planned.runbook.spec.name
        for step in planned.steps:
            static = guard.check_static(planned, step, self._policy, approved=True)
            if not static.allowed:
                assert static.reason is not None
                unit.add(incident_id, _blocked(name, static.reason, static.message))
                return
        await unit.pause()  # resolving user groups asks Slack
        try:
            people = await self._approver.people(planned)
        except SlackError as exc:
            people, why = [], f"cannot resolve the approvers: {exc}"
        else:
            why = "no approvers: set approval.approvers in the runbook or slack.approvers"
        finally:
            await unit.resume()
        if not people:
            unit.add(incident_id, _blocked(name, BlockReason.APPROVAL_UNAVAILABLE, why))
            return
        event, approval = await approve.request(
            unit.conn, self._approver, planned, instance, reason, people, context
        )
        unit.add(incident_id, event)
        if approval is None:
            return
        await unit.pause()
        posted = await approve.post(self._approver, approval, instance)
        await unit.resume()
        if isinstance(posted, str):
            assert approval.channel is not None
            await approvals.set_message(unit.conn, approval.id, approval.channel, posted)
            await self._draw_early_decision(unit, approval.id)
        else:
            unit.add(incident_id, posted)

    async def _draw_early_decision(self, unit: WorkUnit, approval_id: str) -> None:
        """Draw a rejection or expiry that came while Slack's answer was on its way.

        Its own redraw found no message to update then. Read after the ts is written, so
        the decision's transaction or this one sees the other: one of them draws it. An
        approval is drawn by the run it starts.
        """
        current = await approvals.get(unit.conn, approval_id)
        if current is None or current.status not in ("rejected", "expired"):
            return
        await unit.pause()
        await approve.refresh(
            self._engine, self._approver, current, result=approve.decided(current)
        )
        await unit.resume()

    async def _after_approval(
        self, unit: WorkUnit, kind: str, approval_id: str, instance: AlertInstance
    ) -> None:
        """Run an approved runbook (re-checked now), or escalate an expired request."""
        approval = await approvals.get(unit.conn, approval_id)
        if approval is None:
            return
        if kind == "approved":
            # Said here, not by the click's handler, so it always comes before the
            # progress of the run it starts.
            await unit.pause()
            await approve.refresh(
                self._engine, self._approver, approval, result=approve.decided(approval)
            )
            await unit.resume()
        incident_id = instance.incident_id
        found = self._runbooks().named(approval.runbook)
        if not instance.is_open:
            # Pending work for a resolved alert is cancelled: no run, and no escalation.
            unit.add(
                incident_id,
                NewEvent(
                    Stage.APPROVE,
                    EventKind.CANCELLED,
                    "approved, but the alert resolved before the runbook ran; nothing done"
                    if kind == "approved"
                    else "approval expired, but the alert has resolved; no escalation",
                    runbook=approval.runbook,
                    reason=BlockReason.ALERT_RESOLVED,
                ),
            )
            return
        if found is None or found.spec.version != approval.version:
            now = found.spec.version if found else "no longer loaded"
            unit.add(
                incident_id,
                _blocked(
                    approval.runbook,
                    BlockReason.RUNBOOK_CHANGED,
                    f"runbook {approval.runbook} changed since it was approved "
                    f"(version {approval.version}, now {now}); nothing done",
                ),
            )
            return
        planned = self._plan(unit, found, instance)
        if planned is None:
            return
        if kind == "escalate" or not await self._steps(
            unit, instance, planned, planned.steps, approved=True
        ):
            await self._escalate(unit, instance, planned)

    async def _progress(self, written: Sequence[tuple[str, NewEvent]]) -> None:
        """Tell an approval's Slack thread what happened after the decision."""
        incidents = approve.pending_ids(written)
        if not incidents or self._approver.slack is None:
            return
        async with self._engine.connect() as conn:
            found = await approvals.for_incidents(conn, incidents)
        for incident_id, event in written:
            approval = found.get(incident_id)
            if approval is None or event.kind not in approve.PROGRESS:
                continue
            await approve.reply(self._approver, approval, f"{event.kind}: {event.message}")
            if event.kind in approve.FINAL:
                await approve.refresh(
                    self._engine, self._approver, approval, result=f"{event.kind}: {event.message}"
                )

    async def _verify(
        self, unit: WorkUnit, execution_id: int, instance: AlertInstance | None
    ) -> bool:
        """One look at an applied execution; True when it must be looked at again."""
        verdict = await verify(unit, self._rt, self._actions, execution_id, instance)
        if verdict.event is None or instance is None:
            return verdict.again
        unit.add(instance.incident_id, verdict.event)
        found = self._runbooks().named(verdict.runbook)
        planned = self._plan(unit, found, instance) if found else None
        if planned is None:
            return False
        planned = await self._context.start(planned, instance, "after verification").join(
            unit, planned
        )
        if verdict.failed:
            await self._escalate(unit, instance, planned)
        return False

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
        await self._steps(unit, instance, planned, planned.escalate)


def _blocked(runbook: str, reason: str, message: str) -> NewEvent:
    return NewEvent(Stage.GUARD, EventKind.BLOCKED, message, runbook=runbook, reason=reason)
