"""Stage: record what the target looked like, when the incident opens and after verify.

Capture may delay a remediation by at most ``context.budget`` seconds and never fails
it: what could not be read is recorded as such. Links (Alertmanager, the silence form
for these labels, Prometheus, and configured dashboards and log tools) are rendered with
the incident's labels and time window, so on-call starts from one page.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Template, TemplateError

from remediator.context.capture import Limits, Snapshot, cap, capture, summary
from remediator.context.redact import Redactor
from remediator.errors import PlanError
from remediator.kube import Kube
from remediator.models.alert import AlertInstance
from remediator.models.events import EventKind, Stage
from remediator.pipeline.plan import Plan
from remediator.pipeline.unit import WorkUnit
from remediator.runbooks.templating import compile_text, render_text
from remediator.settings import ContextSettings
from remediator.store.timeline import NewEvent


@dataclass(frozen=True)
class Recorded:
    event: NewEvent
    summary: str


class ContextStage:
    def __init__(
        self, kube: Kube | None, settings: ContextSettings, clock: Callable[[], datetime]
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._clock = clock
        self._redact = Redactor(settings.redact)

    @property
    def enabled(self) -> bool:
        mode = self._settings.enabled
        return mode == "on" or (mode == "auto" and self._kube is not None)

    async def snapshot(
        self, unit: WorkUnit, plan: Plan, instance: AlertInstance, trigger: str
    ) -> Recorded | None:
        """The context event for ``plan``'s target, or None when capture is off."""
        spec = plan.runbook.spec.context
        if not self.enabled or not spec.enabled:
            return None
        now = self._clock()
        s = self._settings
        limits = Limits(
            log_lines=s.log_lines if spec.log_lines is None else spec.log_lines,
            events_window=spec.events_window or s.events_window,
            timeout=s.timeout,
            max_bytes=s.max_bytes,
        )
        snap = Snapshot()
        if self._kube is None:
            snap.failures.append("no cluster connection")
        else:
            await unit.pause()  # no transaction is held while the cluster answers
            try:
                async with asyncio.timeout(s.budget):
                    await capture(self._kube, plan.target, limits, self._redact, now, snap)
            except TimeoutError:
                snap.failures.append(f"capture stopped at its {s.budget:g}s budget")
            finally:
                await unit.resume()
        cap(snap, s.max_bytes)
        line = summary(plan.target, snap)
        data: dict[str, Any] = {
            "trigger": trigger,
            "target": plan.target.key,
            **snap.as_data(),
            "links": self.links(instance, {**s.links, **spec.links}, limits, now),
        }
        event = NewEvent(
            Stage.CONTEXT, EventKind.CONTEXT, line, runbook=plan.runbook.spec.name, data=data
        )
        return Recorded(event, line)

    def links(
        self,
        instance: AlertInstance,
        templates: Mapping[str, str],
        limits: Limits,
        now: datetime,
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        base = instance.external_url.rstrip("/")
        if base:
            matchers = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(instance.labels.items()))
            selector = quote("{" + matchers + "}", safe="")
            out["alertmanager"] = f"{base}/#/alerts?filter={selector}"
            out["silence"] = f"{base}/#/silences/new?filter={selector}"
        if instance.generator_url:
            out["prometheus"] = instance.generator_url
        start = instance.starts_at - limits.events_window
        values = {
            "labels": instance.labels,
            "annotations": instance.annotations,
            "starts_at": instance.starts_at.isoformat(),
            "from_ms": int(start.timestamp() * 1000),
            "to_ms": int(now.timestamp() * 1000),
        }
        for name, source in sorted(templates.items()):
            try:
                out[name] = render_text(_compiled(source), values, f"context.links.{name}")
            except (PlanError, TemplateError) as exc:
                out[name] = f"(not rendered: {exc})"
        return out


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template | str:
    return compile_text(source)
