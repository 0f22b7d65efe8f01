"""Prometheus metrics, on a registry per app so tests and replicas never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the server exports; label values are enum strings, never free text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts_received = Counter(
            "remediator_alerts_received",
            "Alert instances first seen, by status.",
            ["status"],
            registry=r,
        )
        self.renotifications = Counter(
            "remediator_renotifications", "Re-sent alerts that triggered nothing new.", registry=r
        )
        self.webhook_requests = Counter(
            "remediator_webhook_requests",
            "Webhook requests by HTTP status code.",
            ["code"],
            registry=r,
        )
        self.matches = Counter(
            "remediator_runbook_matches", "Alerts matched, by runbook.", ["runbook"], registry=r
        )
        self.no_match = Counter(
            "remediator_alerts_unmatched", "Alerts no runbook matched.", registry=r
        )
        self.blocks = Counter(
            "remediator_guard_blocks", "Steps refused, by reason.", ["reason"], registry=r
        )
        self.actions = Counter(
            "remediator_actions",
            "Steps carried out or simulated, by action and result.",
            ["action", "result"],
            registry=r,
        )
        self.approvals = Counter(
            "remediator_approval_decisions",
            "Approve/Reject attempts (Slack, API, CLI) by outcome.",
            ["outcome"],
            registry=r,
        )
        self.approvals_expired = Counter(
            "remediator_approvals_expired", "Approval requests that expired.", registry=r
        )
        self.slack_rejected = Counter(
            "remediator_slack_requests_rejected",
            "Slack interaction requests refused for a bad or stale signature.",
            registry=r,
        )
        self.circuit_open = Gauge(
            "remediator_circuit_open",
            "1 while the circuit breaker pauses automatic actions (as last decided).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "remediator_work_queue_depth", "Work items not yet finished.", registry=r
        )
        self.runbooks_loaded = Gauge(
            "remediator_runbooks_loaded", "Runbooks in the active set.", registry=r
        )
        self.reload_failures = Counter(
            "remediator_runbook_reload_failures",
            "Runbook reloads rejected as invalid.",
            registry=r,
        )
        self.job_failures = Counter(
            "remediator_job_failures",
            "Work items that raised, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.incidents_purged = Counter(
            "remediator_incidents_purged",
            "Resolved incidents deleted by retention, with their timelines.",
            registry=r,
        )
        self.request_latency = Histogram(
            "remediator_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
