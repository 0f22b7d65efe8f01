"""Stage: settle the steps a dead process left begun, when replaying its job cannot.

A job run again after its process died replays its runbook, and the execute stage
reconciles the step it finds begun. That replay does not happen when the alert resolved
in between, or when the runbook the step belongs to changed or went away: the begun step
would then stay ``intent`` for good and keep its target busy. Here such a step is looked
up on the cluster from what its ledger row recorded: found applied, it is verified like
any other; not applied, it is cancelled and never sent.
"""

from __future__ import annotations

from collections.abc import Callable

from remediator.actions.registry import Registry
from remediator.models.alert import AlertInstance
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.models.runbook import Verify
from remediator.pipeline.execute import Runtime, from_ledger, record_applied
from remediator.pipeline.unit import WorkUnit
from remediator.runbooks.loader import LoadedRunbook
from remediator.store import executions
from remediator.store.executions import Execution
from remediator.store.timeline import NewEvent


async def recover(
    unit: WorkUnit,
    rt: Runtime,
    actions: Registry,
    instance: AlertInstance,
    runbook: Callable[[str], LoadedRunbook | None],
) -> frozenset[str]:
    """Settle what the replay will not reach; the runbooks whose step was found applied
    (their current version must not act on this alert again)."""
    applied: set[str] = set()
    for ex in await executions.unsettled(unit.conn, instance.incident_id):
        loaded = runbook(ex.runbook)
        why = _no_replay(instance, ex, loaded)
        if why is None:
            continue  # the replay reaches it and reconciles it in the execute stage
        verify = loaded.spec.verify if loaded is not None else Verify()
        event = await _settle(unit, rt, actions, ex, verify, *why)
        if event.kind == EventKind.RECONCILED:
            applied.add(ex.runbook)
        unit.add(instance.incident_id, event)
    return frozenset(applied)


def _no_replay(
    instance: AlertInstance, ex: Execution, loaded: LoadedRunbook | None
) -> tuple[str, BlockReason] | None:
    """Why the job's replay will not reach this step, with the reason to record."""
    if not instance.is_open:
        return "the alert resolved", BlockReason.ALERT_RESOLVED
    if loaded is None:
        return f"runbook {ex.runbook} is no longer loaded", BlockReason.RUNBOOK_CHANGED
    if loaded.spec.version != ex.version:
        now = loaded.spec.version
        why = f"runbook {ex.runbook} changed (version {ex.version}, now {now})"
        return why, BlockReason.RUNBOOK_CHANGED
    return None


async def _settle(
    unit: WorkUnit,
    rt: Runtime,
    actions: Registry,
    ex: Execution,
    verify: Verify,
    why: str,
    reason: BlockReason,
) -> NewEvent:
    data = {"action": ex.action, "step": ex.step, "target": ex.target}
    step = from_ledger(actions, ex, rt.clock())
    if isinstance(step, str):
        message = f"begun before a restart, but {step}"
    else:
        await unit.pause()
        try:
            found = await step.action.applied(rt.kube, step.target, step.params, step.ctx)
        finally:
            await unit.resume()
        described = step.action.describe(step.target, step.params)
        if found:
            message = f"found applied on the cluster after a restart: {described} ({why} since)"
            timeout = verify.timeout
            await record_applied(unit, rt, ex.incident_id, step.action, timeout, ex.id, message)
            return NewEvent(
                Stage.EXECUTE, EventKind.RECONCILED, message, runbook=ex.runbook, data=data
            )
        message = f"not applied before a restart, and not sent now: {why} ({described})"
    await executions.finish(unit.conn, ex.id, "cancelled", message, rt.clock())
    return NewEvent(
        Stage.EXECUTE, EventKind.CANCELLED, message, runbook=ex.runbook, reason=reason, data=data
    )
