"""A snapshot of the target as on-call would gather it by hand: workload or Rollout or
Certificate status, its pods (readiness, restarts, last termination), the failing
container's last log lines, and recent Kubernetes events.

Read-only and bounded: every call has its own timeout and is never retried, lists are
read a page at a time and only so deep, the whole capture has a budget, stored text is
capped, and a section that cannot be read is recorded as a failure next to the sections
that could. Secrets are never read and pod specs (where env values live) are never
copied; log lines are redacted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remediator.actions.base import PolicyRule, RenderedTarget
from remediator.kube import JSON, Kube, KubeError

# What capture reads, for `remediator rbac --context`; it never reads Secrets.
RBAC = (
    PolicyRule(("apps",), ("deployments", "statefulsets", "daemonsets"), ("get",)),
    PolicyRule(("argoproj.io",), ("rollouts",), ("get",)),
    PolicyRule(("cert-manager.io",), ("certificates",), ("get",)),
    PolicyRule(("",), ("pods", "events"), ("list",)),
    PolicyRule(("",), ("pods/log",), ("get",)),
)
MAX_PODS = 10
MAX_EVENTS = 20
# A busy namespace keeps thousands of events (an hour's worth by default), and a big
# workload has thousands of pods: lists are read a page at a time and no deeper than
# this, so one capture never makes the API server send, or this process parse, megabytes.
LIST_PAGE = 500
EVENTS_PAGES = 4
POD_PAGES = 1
MAX_LINE = 500
_WORKLOADS = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}
_CRDS = {
    "Rollout": ("argoproj.io", "v1alpha1", "rollouts"),
    "Certificate": ("cert-manager.io", "v1", "certificates"),
}


@dataclass(frozen=True)
class Limits:
    log_lines: int
    events_window: timedelta
    timeout: float
    max_bytes: int


@dataclass
class Snapshot:
    sections: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {**self.sections, "failures": self.failures}


async def capture(
    kube: Kube,
    target: RenderedTarget,
    limits: Limits,
    redact: Callable[[str], str],
    now: datetime,
    snap: Snapshot,
) -> None:
    """Read what there is to read about ``target`` into ``snap``, section by section, so
    whatever was read survives when the caller's time budget cuts the capture short.

    The namespace's events depend on nothing else, so they are read beside the chain
    workload → pods → logs: the capture runs beside the first action, and a shorter
    capture leaves fewer of its reads queued at the API server ahead of that action's."""
    reader = _Reader(kube, limits.timeout, snap)
    async with asyncio.TaskGroup() as group:
        events = group.create_task(
            reader.pages(
                "events",
                EVENTS_PAGES,
                lambda read: (
                    f"events: namespace {target.namespace} has more than {read} events; only "
                    f"the first {read} by name were searched, so some about the target may be "
                    "missing"
                ),
                kube.core.list_namespaced_event,
                target.namespace,
            )
        )
        pods = await _target_and_pods(kube, reader, target, limits, redact, snap)
    _events(events.result(), target, pods, limits.events_window, redact, now, snap)


async def _target_and_pods(
    kube: Kube,
    reader: _Reader,
    target: RenderedTarget,
    limits: Limits,
    redact: Callable[[str], str],
    snap: Snapshot,
) -> list[JSON]:
    """The target's status, its pods, and the worst pod's logs; returns those pods."""
    selector: str | None = None
    if target.kind in _WORKLOADS:
        read = getattr(kube.apps, f"read_namespaced_{_WORKLOADS[target.kind]}")
        obj = await reader.get(f"{target}", read, target.name, target.namespace)
        if obj is not None:
            snap.sections["workload"] = workload_status(target.kind, obj)
            selector = _selector(obj)
    elif target.kind in _CRDS:
        group, version, plural = _CRDS[target.kind]
        obj = await reader.get(
            f"{target}",
            kube.custom.get_namespaced_custom_object,
            group,
            version,
            target.namespace,
            plural,
            target.name,
        )
        if obj is not None and target.kind == "Rollout":
            snap.sections["rollout"] = rollout_status(obj)
            selector = _selector(obj)
        elif obj is not None:
            snap.sections["certificate"] = certificate_status(obj)
    pods: list[JSON] = []
    if selector:
        listed = await reader.pages(
            "pods",
            POD_PAGES,
            lambda read: (
                f"pods: more than {read} match {selector}; the least healthy of the first "
                f"{read} by name are shown"
            ),
            kube.core.list_namespaced_pod,
            target.namespace,
            label_selector=selector,
        )
        pods = _worst_first(listed or [])[:MAX_PODS]
        snap.sections["pods"] = [pod_status(p) for p in pods]
    if pods and limits.log_lines:
        await _logs(kube, reader, target.namespace, pods[0], limits.log_lines, redact, snap)
    return pods


def summary(target: RenderedTarget, snap: Snapshot) -> str:
    """One line for the timeline and Slack: state, the worst pod, the top events."""
    parts = []
    s = snap.sections
    if "workload" in s:
        w = s["workload"]
        paused = ", paused" if w["paused"] else ""
        parts.append(f"{w['ready']} of {w['desired']} ready, {w['updated']} updated{paused}")
    if "rollout" in s:
        r = s["rollout"]
        step = f", step {r['step']}/{r['steps']}" if r["steps"] else ""
        parts.append(
            f"Rollout {r['phase'] or 'unknown'}{step}" + (", aborted" if r["abort"] else "")
        )
    if "certificate" in s:
        c = s["certificate"]
        ready = next((x for x in c["conditions"] if x["type"] == "Ready"), None)
        state = f"Ready={ready['status']}" if ready else "no Ready condition"
        parts.append(f"{state}, expires {c['not_after']}")
    worst = (s.get("pods") or [None])[0]
    if worst and (worst["restarts"] or not worst["ready"]):
        states = [c["state"] for c in worst["containers"] if not c["ready"]]
        last = next(
            (c["last_termination"] for c in worst["containers"] if c["last_termination"]), None
        )
        text = f"pod {worst['name']}: " + ", ".join([*states, f"{worst['restarts']} restarts"])
        if last:
            text += f", last {last['reason']} (exit {last['exit_code']})"
        parts.append(text)
    warnings = [e for e in s.get("events") or [] if e["type"] == "Warning"]
    if warnings:
        top = ", ".join(f"{e['reason']} (x{e['count']})" for e in warnings[:3])
        parts.append(f"warning events: {top}")
    if snap.failures:
        parts.append(f"{len(snap.failures)} read(s) failed")
    return f"{target}: " + ("; ".join(parts) or "nothing to report")


class _Reader:
    """Runs one read with the capture's timeout; a failure becomes a recorded line."""

    def __init__(self, kube: Kube, timeout: float, snap: Snapshot) -> None:
        self._kube, self._timeout, self._snap = kube, timeout, snap

    async def get(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> JSON | None:
        value = await self.raw(what, fn, *args, **kw)
        return value if isinstance(value, dict) else None

    async def pages(
        self,
        what: str,
        pages: int,
        cut_short: Callable[[int], str],
        fn: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> list[JSON] | None:
        """The items of a LIST, ``LIST_PAGE`` at a time and at most ``pages`` pages (in
        name order, which is all the API offers); None when not even the first page could
        be read. Items left unread are recorded as ``cut_short(items read)``."""
        items: list[JSON] = []
        token: str | None = None
        for _ in range(pages):
            page = await self.get(what, fn, *args, limit=LIST_PAGE, _continue=token, **kw)
            if page is None:  # why is recorded; keep the pages already read
                return items or None
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
        self._snap.failures.append(cut_short(len(items)))
        return items

    async def raw(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            result = await self._kube.peek(what, self._timeout, fn, *args, **kw)
        except KubeError as exc:
            self._snap.failures.append(exc.message)  # names the read: "events: ..."
            return None
        except asyncio.CancelledError:
            raise
        return result


def workload_status(kind: str, obj: JSON) -> dict[str, Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        counts = {
            "desired": status.get("desiredNumberScheduled", 0),
            "updated": status.get("updatedNumberScheduled", 0),
            "ready": status.get("numberReady", 0),
            "available": status.get("numberAvailable", 0),
        }
    else:
        counts = {
            "desired": spec.get("replicas", 1),
            "updated": status.get("updatedReplicas", 0),
            "ready": status.get("readyReplicas", 0),
            "available": status.get("availableReplicas", 0),
        }
    return {
        "kind": kind,
        **counts,
        "paused": bool(spec.get("paused")),
        "generation": (obj.get("metadata") or {}).get("generation"),
        "observed_generation": status.get("observedGeneration"),
        "conditions": [_condition(c) for c in status.get("conditions") or []],
    }


def rollout_status(obj: JSON) -> dict[str, Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    return {
        "phase": status.get("phase", ""),
        "message": status.get("message", ""),
        "step": status.get("currentStepIndex"),
        "steps": len(steps),
        "abort": bool(status.get("abort")),
        "paused": bool(spec.get("paused")),
        "desired": spec.get("replicas", 1),
        "ready": status.get("readyReplicas", 0),
        "available": status.get("availableReplicas", 0),
        "stable": status.get("stableRS", ""),
        "canary": status.get("currentPodHash", ""),
    }


def certificate_status(obj: JSON) -> dict[str, Any]:
    status = obj.get("status") or {}
    return {
        "not_after": status.get("notAfter"),
        "renewal_time": status.get("renewalTime"),
        "revision": status.get("revision"),
        "conditions": [_condition(c) for c in status.get("conditions") or []],
    }


def pod_status(pod: JSON) -> dict[str, Any]:
    status = pod.get("status") or {}
    containers = [_container(c) for c in status.get("containerStatuses") or []]
    return {
        "name": (pod.get("metadata") or {}).get("name", ""),
        "phase": status.get("phase", ""),
        "reason": status.get("reason", ""),
        "ready": bool(containers) and all(c["ready"] for c in containers),
        "restarts": sum(c["restarts"] for c in containers),
        "node": (pod.get("spec") or {}).get("nodeName", ""),
        "containers": containers,
    }


def _container(c: JSON) -> dict[str, Any]:
    state = c.get("state") or {}
    current = next(iter(state), "")
    detail = state.get(current) or {}
    last = (c.get("lastState") or {}).get("terminated") or {}
    return {
        "name": c.get("name", ""),
        "ready": bool(c.get("ready")),
        "restarts": c.get("restartCount", 0),
        "state": current + (f": {detail['reason']}" if detail.get("reason") else ""),
        "last_termination": (
            {
                "reason": last.get("reason", ""),
                "exit_code": last.get("exitCode"),
                "finished_at": last.get("finishedAt"),
            }
            if last
            else None
        ),
    }


def _condition(c: JSON) -> dict[str, Any]:
    return {k: c.get(k) for k in ("type", "status", "reason", "message")}


def _selector(obj: JSON) -> str | None:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def _worst_first(pods: list[JSON]) -> list[JSON]:
    """The pods most likely to explain the alert first: not ready, then most restarts."""
    return sorted(pods, key=lambda p: (pod_status(p)["ready"], -pod_status(p)["restarts"]))


async def _logs(
    kube: Kube,
    reader: _Reader,
    namespace: str,
    pod: JSON,
    lines: int,
    redact: Callable[[str], str],
    snap: Snapshot,
) -> None:
    status = pod_status(pod)
    if not status["containers"]:
        return
    container = max(status["containers"], key=lambda c: (not c["ready"], c["restarts"]))
    previous = container["restarts"] > 0
    name = status["name"]
    text = await reader.raw(
        f"logs of {name}/{container['name']}" + (" (previous)" if previous else ""),
        kube.core.read_namespaced_pod_log,
        name,
        namespace,
        container=container["name"],
        previous=previous,
        tail_lines=lines,
    )
    if not isinstance(text, str):
        return
    snap.sections["logs"] = {
        "pod": name,
        "container": container["name"],
        "previous": previous,
        "lines": [redact(line)[:MAX_LINE] for line in text.splitlines()[-lines:]],
    }


def _events(
    listed: list[JSON] | None,
    target: RenderedTarget,
    pods: list[JSON],
    window: timedelta,
    redact: Callable[[str], str],
    now: datetime,
    snap: Snapshot,
) -> None:
    """Keep the events about the target and its pods within ``window``."""
    if listed is None:
        return
    names = {target.name} | {(p.get("metadata") or {}).get("name") for p in pods}
    since = now - window
    found = []
    for event in listed:
        involved = event.get("involvedObject") or {}
        when = _when(event)
        if (target.name and involved.get("name") not in names) or when is None or when < since:
            continue
        found.append(
            {
                "type": event.get("type", ""),
                "reason": event.get("reason", ""),
                "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
                "message": redact(str(event.get("message", "")))[:MAX_LINE],
                "count": event.get("count") or 1,
                "last": when.isoformat(),
            }
        )
    found.sort(key=lambda e: e["last"], reverse=True)
    snap.sections["events"] = found[:MAX_EVENTS]


def _when(event: JSON) -> datetime | None:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(key) or (event.get("metadata") or {}).get("creationTimestamp")
        if isinstance(value, datetime):
            return value
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def cap(snap: Snapshot, max_bytes: int) -> None:
    """Drop the oldest log lines, then the oldest events, until the snapshot fits."""

    def size() -> int:
        return len(json.dumps(snap.as_data(), default=str))

    logs = snap.sections.get("logs")
    while size() > max_bytes and logs and logs["lines"]:
        logs["lines"].pop(0)
        logs["truncated"] = True
    events = snap.sections.get("events")
    while size() > max_bytes and events:
        events.pop()
    if size() > max_bytes:
        snap.sections.pop("pods", None)
        snap.failures.append(f"snapshot cut to fit {max_bytes} bytes")
