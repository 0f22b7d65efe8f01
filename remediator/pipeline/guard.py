"""Stage: policy before any side effect. Pure: same inputs, same decision."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from remediator.models.events import BlockReason
from remediator.pipeline.plan import Plan, PlannedStep
from remediator.settings import GuardSettings


@dataclass(frozen=True)
class Decision:
    allowed: bool
    dry_run: bool
    reason: BlockReason | None = None
    message: str = ""


def check(plan: Plan, step: PlannedStep, policy: GuardSettings) -> Decision:
    """Whether ``step`` may run, and whether only as a dry run."""
    dry_run = policy.dry_run or plan.runbook.spec.guards.dry_run
    namespace = plan.target.namespace
    if step.action.mutates:
        denied = next((p for p in policy.namespaces.deny if fnmatchcase(namespace, p)), None)
        if denied is not None:
            return Decision(
                False,
                dry_run,
                BlockReason.NAMESPACE_DENIED,
                f"namespace {namespace!r} is denied by pattern {denied!r}",
            )
        if not any(fnmatchcase(namespace, p) for p in policy.namespaces.allow):
            return Decision(
                False,
                dry_run,
                BlockReason.NAMESPACE_NOT_ALLOWED,
                f"namespace {namespace!r} is not in guards.namespaces.allow",
            )
    if plan.approval_required and not dry_run:
        return Decision(
            False,
            dry_run,
            BlockReason.APPROVAL_UNAVAILABLE,
            "the runbook requires approval and no approval channel is configured",
        )
    return Decision(True, dry_run)
