"""Alertmanager webhook v4 bodies as a real Alertmanager would send them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

GO_ZERO = "0001-01-01T00:00:00Z"
T0 = datetime(2025, 5, 1, 10, 0, 0, tzinfo=UTC)


def fingerprint(labels: dict[str, str]) -> str:
    text = "\x00".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def alert(
    labels: dict[str, str] | None = None,
    *,
    status: str = "firing",
    starts_at: str = "2025-05-01T10:00:00.123456789Z",
    ends_at: str | None = None,
    annotations: dict[str, str] | None = None,
    fp: str | None = None,
) -> dict[str, Any]:
    labels = labels or crashloop_labels()
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations or {"summary": "pod is crash looping"},
        "startsAt": starts_at,
        "endsAt": ends_at or (GO_ZERO if status == "firing" else "2025-05-01T10:05:00Z"),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fp or fingerprint(labels),
    }


def notification(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    alerts_list = list(alerts) or [alert()]
    firing = any(a["status"] == "firing" for a in alerts_list)
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "remediator",
        "groupLabels": {"alertname": alerts_list[0]["labels"].get("alertname", "")},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts_list,
    }
    body.update(extra)
    return body


def crashloop_labels(**overrides: str) -> dict[str, str]:
    labels = {
        "alertname": "KubePodCrashLooping",
        "namespace": "prod",
        "deployment": "web",
        "pod": "web-5d8f7-abcde",
        "severity": "critical",
    }
    labels.update(overrides)
    return labels
