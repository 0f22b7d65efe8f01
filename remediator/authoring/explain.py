"""``remediator explain``: for each alert of a payload, which runbooks match and why not."""

from __future__ import annotations

from dataclasses import dataclass, field

from remediator.actions.registry import Registry
from remediator.authoring.facts import sample_instance
from remediator.errors import PlanError
from remediator.models.alert import Notification
from remediator.pipeline.plan import plan
from remediator.runbooks.loader import RunbookSet
from remediator.runbooks.matchers import first_failing


@dataclass
class AlertExplanation:
    labels: dict[str, str]
    matched: list[str] = field(default_factory=list)  # one line per matching runbook
    unmatched: list[str] = field(default_factory=list)  # one line per other runbook

    def render(self) -> str:
        name = self.labels.get("alertname", "(no alertname)")
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.labels.items()))
        lines = [f"alert {name} {{{shown}}}"]
        lines += [f"  MATCH    {line}" for line in self.matched] or ["  no runbook matches"]
        lines += [f"  no match {line}" for line in self.unmatched]
        return "\n".join(lines)


def explain(
    notification: Notification, runbooks: RunbookSet, actions: Registry
) -> list[AlertExplanation]:
    result = []
    for alert in notification.alerts:
        found = AlertExplanation(dict(alert.labels))
        instance = sample_instance(
            alert.labels,
            alert.annotations,
            fingerprint=alert.fingerprint,
            starts_at=alert.startsAt,
            generator_url=alert.generatorURL,
            external_url=notification.externalURL,
        )
        for runbook in runbooks.runbooks:
            failing = first_failing(runbook.matchers, alert.labels)
            if failing is not None:
                actual = alert.labels.get(failing.name)
                seen = f"{actual!r}" if actual is not None else "absent"
                found.unmatched.append(
                    f"{runbook.ident}: {failing} failed ({failing.name} is {seen})"
                )
                continue
            try:
                planned = plan(runbook, instance, actions)
            except PlanError as exc:
                found.matched.append(f"{runbook.ident}: refused ({exc.reason}): {exc}")
                continue
            steps = "; ".join(s.description for s in planned.steps)
            found.matched.append(f"{runbook.ident}: {steps}")
        result.append(found)
    return result
