"""Stage: carry a step out (or simulate it), exactly once per alert instance.

The execution ledger row is written before anything happens; if it already exists, the
step ran before (a retried job, a second replica) and is not repeated. A live step's
intent is committed before the action runs, and no connection is held while it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from remediator.actions.base import LiveAction
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.pipeline.guard import Decision
from remediator.pipeline.plan import Plan, PlannedStep
from remediator.pipeline.unit import WorkUnit
from remediator.store import executions
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)


async def execute(
    unit: WorkUnit,
    incident_id: str,
    plan: Plan,
    step: PlannedStep,
    decision: Decision,
    clock: Callable[[], datetime],
) -> NewEvent:
    runbook = plan.runbook.spec.name
    data = {"action": step.action.name, "step": step.index, "target": plan.target.key}
    action = step.action
    if not decision.dry_run and not isinstance(action, LiveAction):
        return NewEvent(
            Stage.EXECUTE,
            EventKind.BLOCKED,
            f"{action.name} can only run as a dry run in this version",
            runbook=runbook,
            reason=BlockReason.ACTION_UNAVAILABLE,
            data=data,
        )
    key = executions.ExecutionKey(
        incident_id, runbook, plan.runbook.spec.version, step.index, plan.target.key
    )
    status = "dry_run" if decision.dry_run else "started"
    execution_id = await executions.begin(
        unit.conn,
        key,
        action.name,
        dry_run=decision.dry_run,
        status=status,
        detail=step.description,
        now=clock(),
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
        return NewEvent(
            Stage.EXECUTE,
            EventKind.DRY_RUN,
            f"would {step.description}{note}",
            runbook=runbook,
            data=data,
        )
    assert isinstance(action, LiveAction)
    await unit.pause()
    try:
        outcome = await action.apply(plan.target, step.params)
    except Exception as exc:  # an action failing is an outcome to record, not a crash
        log.exception("action_failed", action=action.name)
        result, event = (
            "failed",
            NewEvent(
                Stage.EXECUTE,
                EventKind.FAILED,
                f"{action.name} failed: {exc}",
                runbook=runbook,
                data=data,
            ),
        )
    else:
        result, event = (
            "succeeded",
            NewEvent(Stage.EXECUTE, EventKind.EXECUTED, outcome, runbook=runbook, data=data),
        )
    await unit.resume()
    await executions.finish(unit.conn, execution_id, result, event.message, clock())
    return event
