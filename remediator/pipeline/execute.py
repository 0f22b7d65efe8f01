"""Stage: carry a step out (or simulate it), exactly once per alert instance.

The execution ledger row is written before anything happens; if it already exists, the
step ran before (a retried job, a second replica) and is not repeated.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.actions.base import LiveAction
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.pipeline.guard import Decision
from remediator.pipeline.plan import Plan, PlannedStep
from remediator.store import executions
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)


async def execute(
    engine: AsyncEngine,
    incident_id: str,
    plan: Plan,
    step: PlannedStep,
    decision: Decision,
    now: datetime,
) -> NewEvent:
    runbook = plan.runbook.spec.name
    data = {"action": step.action.name, "step": step.index, "target": plan.target.key}
    live = isinstance(step.action, LiveAction)
    if not decision.dry_run and not live:
        return NewEvent(
            Stage.EXECUTE,
            EventKind.BLOCKED,
            f"{step.action.name} can only run as a dry run in this version",
            runbook=runbook,
            reason=BlockReason.ACTION_UNAVAILABLE,
            data=data,
        )
    key = executions.ExecutionKey(
        incident_id, runbook, plan.runbook.spec.version, step.index, plan.target.key
    )
    execution_id = await executions.begin(
        engine, key, step.action.name, dry_run=decision.dry_run, now=now
    )
    if execution_id is None:
        return NewEvent(
            Stage.EXECUTE,
            EventKind.SKIPPED,
            f"already done for this alert: {step.description}",
            runbook=runbook,
            reason=BlockReason.ALREADY_EXECUTED,
            data=data,
        )
    if decision.dry_run:
        note = " (approval would be requested first)" if plan.approval_required else ""
        await executions.finish(engine, execution_id, "dry_run", step.description, now)
        return NewEvent(
            Stage.EXECUTE,
            EventKind.DRY_RUN,
            f"would {step.description}{note}",
            runbook=runbook,
            data=data,
        )
    assert isinstance(step.action, LiveAction)
    try:
        outcome = await step.action.apply(plan.target, step.params)
    except Exception as exc:  # an action failing is an outcome to record, not a crash
        log.exception("action_failed", action=step.action.name)
        await executions.finish(engine, execution_id, "failed", str(exc), now)
        return NewEvent(
            Stage.EXECUTE,
            EventKind.FAILED,
            f"{step.action.name} failed: {exc}",
            runbook=runbook,
            data=data,
        )
    await executions.finish(engine, execution_id, "succeeded", outcome, now)
    return NewEvent(Stage.EXECUTE, EventKind.EXECUTED, outcome, runbook=runbook, data=data)
