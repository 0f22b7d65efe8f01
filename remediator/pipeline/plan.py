"""Stage: render a runbook's target and steps for one alert, and refuse unsafe names.

Rendered names are checked as Kubernetes would (DNS-1123), so a label value can never
smuggle a path segment, a selector or another namespace into an API call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from remediator.actions.base import Action, Params, RenderedTarget
from remediator.actions.registry import Registry
from remediator.errors import PlanError
from remediator.models.alert import AlertInstance
from remediator.models.events import BlockReason
from remediator.runbooks.loader import CompiledStep, LoadedRunbook
from remediator.runbooks.templating import render_text, render_value

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class PlannedStep:
    index: int
    action: Action
    params: Params
    description: str


@dataclass(frozen=True)
class Plan:
    runbook: LoadedRunbook
    target: RenderedTarget
    steps: tuple[PlannedStep, ...]
    escalate: tuple[PlannedStep, ...]
    approval_required: bool
    team: str = ""  # the owning team, set by routing
    incident_id: str = ""
    context: str = ""  # the latest context summary, for messages about this plan

    def summary(self) -> dict[str, Any]:
        return {
            "target": {
                "kind": self.target.kind,
                "namespace": self.target.namespace,
                "name": self.target.name,
            },
            "steps": [
                {
                    "action": s.action.name,
                    "params": s.params.model_dump(mode="json"),
                    "description": s.description,
                }
                for s in self.steps
            ],
            "approval_required": self.approval_required,
        }


def template_context(instance: AlertInstance) -> dict[str, Any]:
    """What runbook templates can see."""
    return {
        "labels": instance.labels,
        "annotations": instance.annotations,
        "alert": {
            "status": instance.status,
            "fingerprint": instance.fingerprint,
            "startsAt": instance.starts_at.isoformat(),
            "generatorURL": instance.generator_url,
            "externalURL": instance.external_url,
        },
    }


def check_namespace(value: str) -> None:
    if len(value) > 63 or not _LABEL.match(value):
        raise PlanError(
            BlockReason.INVALID_NAME,
            f"target.namespace {value!r} is not a valid namespace (DNS-1123 label)",
        )


def check_name(value: str) -> None:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        raise PlanError(
            BlockReason.INVALID_NAME,
            f"target.name {value!r} is not a valid object name (DNS-1123 subdomain)",
        )


def plan(runbook: LoadedRunbook, instance: AlertInstance, actions: Registry) -> Plan:
    """Render ``runbook`` for ``instance``; raises PlanError with a BlockReason."""
    context = template_context(instance)
    target = RenderedTarget(
        kind=render_text(runbook.kind, context, "target.kind"),
        namespace=render_text(runbook.namespace, context, "target.namespace"),
        name=render_text(runbook.name, context, "target.name"),
    )
    check_namespace(target.namespace)
    if target.name or runbook.spec.target.name:
        check_name(target.name)
    return Plan(
        runbook=runbook,
        target=target,
        steps=tuple(_step(i, s, target, context, actions) for i, s in enumerate(runbook.steps)),
        # Negative indices keep escalation steps apart from the steps in the ledger.
        escalate=tuple(
            _step(-(i + 1), s, target, context, actions) for i, s in enumerate(runbook.escalate)
        ),
        approval_required=_needs_approval(runbook, instance.labels),
    )


def _step(
    index: int,
    step: CompiledStep,
    target: RenderedTarget,
    context: Mapping[str, Any],
    actions: Registry,
) -> PlannedStep:
    action = actions[step.action]
    if action.kinds and target.kind not in action.kinds:
        raise PlanError(
            BlockReason.INVALID_PARAMS,
            f"{step.where}: {action.name} cannot act on kind {target.kind!r}",
        )
    rendered = render_value(step.params, context, f"{step.where}.params")
    try:
        params = action.params_model.model_validate(rendered)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanError(
            BlockReason.INVALID_PARAMS, f"{step.where}.params.{where}: {first['msg']}"
        ) from exc
    return PlannedStep(index, action, params, action.describe(target, params))


def _needs_approval(runbook: LoadedRunbook, labels: Mapping[str, str]) -> bool:
    if not runbook.spec.approval.required:
        return False
    return all(m.matches(labels) for m in runbook.approval_when)
