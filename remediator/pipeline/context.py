"""Stage: record what the target looked like, when the incident opens and after verify.

The opening snapshot is read beside the first action, not before it: its reads are
started when the plan is made and go out at the pipeline's next wait (at the latest, the
action's first request), on a client of their own on another thread (``KubeThread``).
The pipeline waits for them only where a person will see the result (an approval
request, a notify step, the next timeline entry). So context never delays a cluster
write, and elsewhere waits at most ``context.budget`` seconds. What could not be read is
recorded as such and never fails the incident. Links (Alertmanager, the silence form for
these labels, Prometheus, and configured dashboards and log tools) are rendered with the
incident's labels and time window, so on-call starts from one page.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import structlog
from jinja2 import Template, TemplateError

from remediator.actions.base import RenderedTarget
from remediator.context.capture import Limits, Snapshot, cap, capture, summary
from remediator.context.redact import Redactor
from remediator.errors import PlanError
from remediator.kube import Kube
from remediator.kube.thread import KubeThread
from remediator.models.alert import AlertInstance
from remediator.models.events import EventKind, Stage
from remediator.pipeline.plan import Plan
from remediator.pipeline.unit import WorkUnit
from remediator.runbooks.templating import compile_text, render_text
from remediator.settings import ContextSettings
from remediator.store.timeline import NewEvent

EARLIEST = datetime.min.replace(tzinfo=UTC)
log = structlog.get_logger(__name__)


OPENED = "incident opened"  # the trigger whose snapshot incidents on one target may share
# Snapshots kept for sharing at most: each may hold up to ``context.max_bytes`` of text,
# and a storm over thousands of targets must not grow the server by as many snapshots.
SHARED_MAX = 1024


@dataclass(frozen=True)
class _Reads:
    """One snapshot's reads. They run to the end (within ``context.budget``) even when
    the incident they were made for stops waiting, since others may share them."""

    task: asyncio.Task[Snapshot]
    at: datetime
    incident_id: str  # the incident they were read for


@dataclass(frozen=True)
class Recorded:
    event: NewEvent
    summary: str


class ContextStage:
    def __init__(
        self, reader: KubeThread | None, settings: ContextSettings, clock: Callable[[], datetime]
    ) -> None:
        self._reader = reader
        self._settings = settings
        self._clock = clock
        self._redact = Redactor(settings.redact)
        self._recent: dict[tuple[str, int, timedelta], _Reads] = {}

    @property
    def enabled(self) -> bool:
        mode = self._settings.enabled
        return mode == "on" or (mode == "auto" and self._reader is not None)

    def start(self, plan: Plan, instance: AlertInstance, trigger: str) -> Capture:
        """Send the snapshot's reads now; ``Capture.join`` collects the result."""
        spec = plan.runbook.spec.context
        if not self.enabled or not spec.enabled:
            return Capture(None, instance.incident_id)
        s = self._settings
        limits = Limits(
            log_lines=s.log_lines if spec.log_lines is None else spec.log_lines,
            events_window=spec.events_window or s.events_window,
            timeout=s.timeout,
            max_bytes=s.max_bytes,
        )
        now = self._clock()
        reads = self._reads(plan.target, limits, instance.incident_id, now, trigger == OPENED)
        task = asyncio.create_task(
            self._record(reads, plan, instance, trigger, limits, now), name="context-capture"
        )
        return Capture(task, instance.incident_id)

    def forget(self, target: RenderedTarget) -> None:
        """An action is about to change ``target``: what was read before it no longer
        describes what a newly opened incident would see."""
        for key in [k for k in self._recent if k[0] == target.key]:
            del self._recent[key]

    def _reads(
        self, target: RenderedTarget, limits: Limits, incident_id: str, now: datetime, share: bool
    ) -> _Reads:
        """The reads of a recent opening snapshot of ``target``, else new ones.

        In an alert storm many incidents open on one target within seconds; each reading
        the target, its pods, their logs and the namespace's events again would add four
        API requests per alert to a cluster that is already in trouble."""
        window = self._settings.reuse
        while self._recent:  # insertion order is reading order: the oldest come first
            oldest = next(iter(self._recent))
            if now - self._recent[oldest].at < window:
                break
            del self._recent[oldest]
        key = (target.key, limits.log_lines, limits.events_window)
        found = self._recent.get(key)
        if share and found is not None and now - found.at < window:
            return found
        task = asyncio.create_task(self._read(target, limits, now), name="context-reads")
        task.add_done_callback(_quiet)
        reads = _Reads(task, now, incident_id)
        if share and window:
            self._recent.pop(key, None)
            self._recent[key] = reads
            if len(self._recent) > SHARED_MAX:
                del self._recent[next(iter(self._recent))]
        return reads

    async def _read(self, target: RenderedTarget, limits: Limits, now: datetime) -> Snapshot:
        snap = Snapshot()
        if self._reader is None:
            snap.failures.append("no cluster connection")
        else:
            budget = self._settings.budget

            async def read(kube: Kube) -> None:  # on the reader's thread: its loop times it
                async with asyncio.timeout(budget):
                    await capture(kube, target, limits, self._redact, now, snap)

            try:
                await self._reader.run(read)
            except TimeoutError:
                snap.failures.append(f"capture stopped at its {budget:g}s budget")
            except Exception as exc:  # shared reads must not fail every incident sharing them
                log.exception("context_capture_failed", target=target.key)
                snap.failures.append(f"capture failed: {exc}")
        cap(snap, limits.max_bytes)
        return snap

    async def _record(
        self,
        reads: _Reads,
        plan: Plan,
        instance: AlertInstance,
        trigger: str,
        limits: Limits,
        now: datetime,
    ) -> Recorded:
        snap = await asyncio.shield(reads.task)  # cancelling one incident spares the reads
        line = summary(plan.target, snap)
        links = {**self._settings.links, **plan.runbook.spec.context.links}
        data: dict[str, Any] = {
            "trigger": trigger,
            "target": plan.target.key,
            **snap.as_data(),
            "links": self.links(instance, links, limits, now),
        }
        if reads.incident_id != instance.incident_id:
            data["shared"] = {"incident": reads.incident_id, "read_at": reads.at.isoformat()}
            line += f" (read at {reads.at:%H:%M:%S} UTC for incident {reads.incident_id})"
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
        # An alert may start in year 1 (Alertmanager accepts it); the window stops there.
        start = instance.starts_at - min(limits.events_window, instance.starts_at - EARLIEST)
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


class Capture:
    """A snapshot whose reads are under way while the pipeline goes on."""

    def __init__(self, task: asyncio.Task[Recorded] | None, incident_id: str) -> None:
        self._task = task
        self._incident_id = incident_id
        self._recorded = False

    async def result(self, unit: WorkUnit) -> Recorded | None:
        """Wait for the reads, holding no transaction meanwhile."""
        if self._task is None:
            return None
        if not self._task.done():
            await unit.pause()
            try:
                await asyncio.wait({self._task})
            finally:
                await unit.resume()
        return self._task.result()

    async def join(self, unit: WorkUnit, plan: Plan) -> Plan:
        """Put the snapshot on the timeline (once) and into ``plan`` for messages."""
        recorded = await self.result(unit)
        if recorded is None:
            return plan
        if not self._recorded:
            self._recorded = True
            unit.add(self._incident_id, recorded.event)
        return dataclasses.replace(plan, context=recorded.summary)

    def cancel(self) -> None:
        """Stop waiting (the job failed before joining); the reads themselves finish
        within their budget, for any other incident sharing them."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            self._task.add_done_callback(_quiet)


def _quiet(task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template | str:
    return compile_text(source)
