"""Stage: carry a step out (or simulate it), exactly once per alert instance.

The execution ledger row is written before anything happens; if it already exists, the
step ran before (a retried job, a second replica) and is not repeated. A live step
commits its intent durably, holds no connection while it acts, and records the outcome
after. A step found with intent but no outcome (the server died in between) is
reconciled with the cluster: the target's execution-id annotation says whether it was
applied; if not, the guards decide again. A write whose answer was lost is checked the
same way before it is ever sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from remediator.actions.base import (
    ActionRefused,
    Context,
    LiveAction,
    Params,
    RenderedTarget,
    Say,
)
from remediator.actions.registry import Registry
from remediator.errors import RemediatorError
from remediator.kube import Kube, KubeError
from remediator.kube.errors import Transient
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.models.ids import new_id
from remediator.pipeline.guard import Decision
from remediator.pipeline.plan import Plan, PlannedStep
from remediator.pipeline.unit import WorkUnit
from remediator.store import executions, jobs
from remediator.store.executions import Execution, ExecutionKey
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What the execute and verify stages share for the life of the server."""

    kube: Kube | None
    clock: Callable[[], datetime]
    verify_interval: timedelta
    server_dry_run: bool = False
    deadline: float = 60.0  # seconds an ambiguous write may be retried
    messenger: Callable[[Plan], Say] | None = None  # chat delivery for notify

    def context(self, plan: Plan, execution_id: str) -> Context:
        say = self.messenger(plan) if self.messenger else None
        return Context(execution_id, plan.runbook.spec.name, self.clock(), say=say)


@dataclass(frozen=True)
class LedgerStep:
    """A step as its ledger row recorded it, ready to look at the cluster again."""

    action: LiveAction
    target: RenderedTarget
    params: Params
    ctx: Context


def from_ledger(actions: Registry, ex: Execution, now: datetime) -> LedgerStep | str:
    """Rebuild a live step from its execution row; a string says why it cannot be."""
    action = actions.get(ex.action)
    if not isinstance(action, LiveAction):
        return f"action {ex.action!r} is no longer available"
    try:
        params = action.params_model.model_validate(ex.params)
    except ValidationError as exc:
        return f"its stored parameters are no longer valid: {exc}"
    assert ex.uid is not None  # every live step is begun with one
    return LedgerStep(
        action, RenderedTarget.from_key(ex.target), params, Context(ex.uid, ex.runbook, now)
    )


@dataclass(frozen=True)
class Outcome:
    event: NewEvent
    ok: bool  # whether later steps of the runbook may follow
    failed: bool = False  # whether the runbook's escalate steps should run


async def execute(
    unit: WorkUnit,
    rt: Runtime,
    incident_id: str,
    plan: Plan,
    step: PlannedStep,
    decision: Decision,
) -> Outcome:
    runbook = plan.runbook.spec.name
    data = {"action": step.action.name, "step": step.index, "target": plan.target.key}
    key = ExecutionKey(incident_id, runbook, plan.runbook.spec.version, step.index, plan.target.key)
    action = step.action
    runnable = decision.dry_run or isinstance(action, LiveAction)
    if decision.allowed and runnable:
        # Record the step first: on an alert's first pass it is new, and one statement
        # both checks and records that (the unique key decides, not an earlier read).
        uid = new_id()
        execution_id = await executions.begin(
            unit.conn,
            key,
            action.name,
            dry_run=decision.dry_run,
            status="dry_run" if decision.dry_run else "intent",
            detail=step.description,
            namespace=plan.target.namespace,
            params=step.params.model_dump(mode="json"),
            uid=uid,
            now=rt.clock(),
        )
        if execution_id is not None and decision.dry_run:
            return Outcome(await _simulate(unit, rt, plan, step, uid, data), ok=True)
        if execution_id is not None:
            ctx = rt.context(plan, uid)
            return await _apply(
                unit, rt, plan, step, execution_id, ctx, data, incident_id=incident_id
            )
    existing = await executions.find(unit.conn, key)
    if existing is not None and existing.status != "intent":
        # A job run again (its process died, or it failed after this step) replays its
        # runbook: a step that went through lets the ones after it follow.
        return Outcome(
            NewEvent(
                Stage.EXECUTE,
                EventKind.SKIPPED,
                f"already done for this alert: {step.description}",
                runbook=runbook,
                reason=BlockReason.ALREADY_EXECUTED,
                data=data,
            ),
            ok=existing.status in executions.WENT_THROUGH,
        )
    if existing is not None:
        return await _reconcile(unit, rt, plan, step, decision, existing, data)
    if not decision.allowed:
        assert decision.reason is not None
        return Outcome(_blocked(runbook, decision.reason, decision.message, data), ok=False)
    assert not runnable  # begin() above recorded it, or found the row read here
    return Outcome(
        _blocked(
            runbook,
            BlockReason.ACTION_UNAVAILABLE,
            f"{action.name} can only run as a dry run in this version",
            data,
        ),
        ok=False,
    )


async def _simulate(
    unit: WorkUnit, rt: Runtime, plan: Plan, step: PlannedStep, uid: str, data: dict[str, object]
) -> NewEvent:
    note = " (approval would be requested first)" if plan.approval_required else ""
    message = f"would {step.description}{note}"
    action = step.action
    if rt.server_dry_run and action.mutates and isinstance(action, LiveAction):
        ctx = Context(uid, plan.runbook.spec.name, rt.clock(), server_dry_run=True)
        await unit.pause()
        try:
            outcome = await action.apply(rt.kube, plan.target, step.params, ctx)
            message += f"; the API server accepted it (dryRun=All): {outcome}"
        except (KubeError, ActionRefused) as exc:
            message += f"; it would fail: {exc}"
        finally:
            await unit.resume()
    return NewEvent(
        Stage.EXECUTE, EventKind.DRY_RUN, message, runbook=plan.runbook.spec.name, data=data
    )


async def _apply(
    unit: WorkUnit,
    rt: Runtime,
    plan: Plan,
    step: PlannedStep,
    execution_id: int,
    ctx: Context,
    data: dict[str, object],
    *,
    incident_id: str,
    reconciled: bool = False,
) -> Outcome:
    action = step.action
    assert isinstance(action, LiveAction)
    # The intent is durable before the cluster hears of it.
    await unit.pause(before_action=True)
    try:
        message = await apply_once(action, rt, plan.target, step.params, ctx)
    except Exception as exc:  # an action failing is an outcome to record, not a crash
        refused = isinstance(exc, RemediatorError)  # an expected failure, with a reason
        if not refused:
            log.exception("action_failed", action=action.name)
        await unit.resume()
        text = f"{action.name} failed: {exc}" if refused else f"{action.name} failed: {exc!r}"
        await executions.finish(unit.conn, execution_id, "failed", text, rt.clock())
        reason = BlockReason.ACTION_REFUSED if isinstance(exc, ActionRefused) else None
        event = NewEvent(
            Stage.EXECUTE,
            EventKind.FAILED,
            text,
            runbook=plan.runbook.spec.name,
            reason=reason,
            data=data,
        )
        return Outcome(event, ok=False, failed=True)
    await unit.resume()
    if reconciled:
        message = f"{message} (after a restart found it not yet applied)"
    timeout = plan.runbook.spec.verify.timeout
    await record_applied(unit, rt, incident_id, action, timeout, execution_id, message)
    return Outcome(
        NewEvent(
            Stage.EXECUTE, EventKind.EXECUTED, message, runbook=plan.runbook.spec.name, data=data
        ),
        ok=True,
    )


async def record_applied(
    unit: WorkUnit,
    rt: Runtime,
    incident_id: str,
    action: LiveAction,
    verify_timeout: timedelta,
    execution_id: int,
    message: str,
) -> None:
    """Record success; a cluster change is then verified by a scheduled verify job."""
    now = rt.clock()
    if not action.mutates:
        await executions.finish(unit.conn, execution_id, "done", message, now)
        return
    await executions.finish(
        unit.conn, execution_id, "applied", message, now, verify_deadline=now + verify_timeout
    )
    await jobs.enqueue(
        unit.conn,
        incident_id,
        "verify",
        now,
        not_before=now + rt.verify_interval,
        execution_id=execution_id,
    )


async def _reconcile(
    unit: WorkUnit,
    rt: Runtime,
    plan: Plan,
    step: PlannedStep,
    decision: Decision,
    existing: Execution,
    data: dict[str, object],
) -> Outcome:
    """An intent without an outcome: ask the cluster before doing anything."""
    runbook = plan.runbook.spec.name
    action = step.action
    assert isinstance(action, LiveAction)
    assert existing.uid is not None
    ctx = rt.context(plan, existing.uid)
    await unit.pause()
    try:
        applied = await action.applied(rt.kube, plan.target, step.params, ctx)
    finally:
        await unit.resume()
    if applied:
        message = f"found applied on the cluster after a restart: {step.description}"
        timeout = plan.runbook.spec.verify.timeout
        await record_applied(unit, rt, existing.incident_id, action, timeout, existing.id, message)
        return Outcome(
            NewEvent(Stage.EXECUTE, EventKind.RECONCILED, message, runbook=runbook, data=data),
            ok=True,
        )
    if not decision.allowed:
        assert decision.reason is not None
        message = f"not applied before a restart, and now refused: {decision.message}"
        await executions.finish(unit.conn, existing.id, "cancelled", message, rt.clock())
        return Outcome(_blocked(runbook, decision.reason, message, data), ok=False)
    return await _apply(
        unit,
        rt,
        plan,
        step,
        existing.id,
        ctx,
        data,
        incident_id=existing.incident_id,
        reconciled=True,
    )


async def apply_once(
    action: LiveAction, rt: Runtime, target: RenderedTarget, params: Params, ctx: Context
) -> str:
    """Apply; when a write's answer is lost, look at the cluster before sending again,
    and once more when the deadline ends the retries, so the ledger records what the
    cluster has rather than a failure that was in fact applied."""
    confirmed: list[str] = []

    def lost() -> str:
        return f"{action.describe(target, params)} (applied; its answer was lost: {confirmed[-1]})"

    async def attempt() -> str:
        if confirmed and await action.applied(rt.kube, target, params, ctx):
            return lost()
        try:
            return await action.apply(rt.kube, target, params, ctx)
        except Transient as exc:
            if exc.ambiguous:
                confirmed.append(exc.message)
            raise

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, Transient) and e.ambiguous),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(rt.deadline),
        reraise=True,
    )
    try:
        async for trial in retrying:
            with trial:
                return await attempt()
    except Transient as exc:
        if not confirmed:
            raise
        try:
            found = await action.applied(rt.kube, target, params, ctx)
        except KubeError as look:
            raise exc from look
        if found:
            return lost()
        raise
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _blocked(runbook: str, reason: str, message: str, data: dict[str, object]) -> NewEvent:
    return NewEvent(
        Stage.GUARD, EventKind.BLOCKED, message, runbook=runbook, reason=reason, data=data
    )
