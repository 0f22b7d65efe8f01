"""Stage: did the action heal its target? One look per verify job.

A verify job is scheduled when a cluster change is applied and comes back every
``worker.verify_interval`` until the target is healthy, the action reports it cannot
heal, the runbook's ``verify.timeout`` passes, or Alertmanager resolves the alert
(which counts as healed). Waiting between looks holds no worker and no transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediator.actions.base import Health, HealthState
from remediator.actions.registry import Registry
from remediator.kube import KubeError
from remediator.models.alert import AlertInstance
from remediator.models.events import EventKind, Stage
from remediator.pipeline.execute import Runtime, from_ledger
from remediator.pipeline.unit import WorkUnit
from remediator.store import executions
from remediator.store.timeline import NewEvent


@dataclass(frozen=True)
class Verdict:
    event: NewEvent | None  # None while still waiting
    again: bool = False  # look again later
    failed: bool = False  # escalate
    runbook: str = ""


async def verify(
    unit: WorkUnit,
    rt: Runtime,
    actions: Registry,
    execution_id: int,
    instance: AlertInstance | None,
) -> Verdict:
    ex = await executions.get(unit.conn, execution_id)
    if ex is None or ex.status != "applied":
        return Verdict(None)  # settled already (a retried job)
    data = {"action": ex.action, "step": ex.step, "target": ex.target}
    now = rt.clock()
    if instance is not None and not instance.is_open:
        health = Health(HealthState.HEALTHY, "Alertmanager resolved the alert")
    else:
        health = await _look(unit, rt, actions, ex)
    if health.state == HealthState.PROGRESSING and (
        ex.verify_deadline is None or now < ex.verify_deadline
    ):
        return Verdict(None, again=True)
    if health.state == HealthState.HEALTHY:
        await executions.finish(unit.conn, ex.id, "verified", health.message, now)
        return Verdict(
            NewEvent(
                Stage.VERIFY,
                EventKind.VERIFIED,
                f"{ex.target} healthy: {health.message}",
                runbook=ex.runbook,
                data=data,
            ),
            runbook=ex.runbook,
        )
    why = health.message if health.state == HealthState.FAILED else f"timed out: {health.message}"
    await executions.finish(unit.conn, ex.id, "verification_failed", why, now)
    return Verdict(
        NewEvent(
            Stage.VERIFY,
            EventKind.VERIFICATION_FAILED,
            f"{ex.target} did not heal: {why}",
            runbook=ex.runbook,
            data=data,
        ),
        failed=True,
        runbook=ex.runbook,
    )


async def _look(unit: WorkUnit, rt: Runtime, actions: Registry, ex: executions.Execution) -> Health:
    step = from_ledger(actions, ex, rt.clock())
    if isinstance(step, str):
        return Health(HealthState.FAILED, step)
    await unit.pause()
    try:
        return await step.action.verify(rt.kube, step.target, step.params, step.ctx)
    except KubeError as exc:
        return Health(HealthState.PROGRESSING, f"could not read the target: {exc}")
    finally:
        await unit.resume()
