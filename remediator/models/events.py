"""Timeline vocabulary: the kinds of events and the reasons a step is refused.

``BlockReason`` values are also metric labels and API strings, so they never change
meaning once released; add new ones instead.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    INGEST = "ingest"
    MATCH = "match"
    PLAN = "plan"
    GUARD = "guard"
    APPROVE = "approve"
    EXECUTE = "execute"
    VERIFY = "verify"
    CONTEXT = "context"
    ESCALATE = "escalate"
    RECORD = "record"


class EventKind(StrEnum):
    RECEIVED = "received"
    RENOTIFIED = "renotified"
    MATCHED = "matched"
    NO_MATCH = "no_match"
    PLANNED = "planned"
    BLOCKED = "blocked"
    DRY_RUN = "dry_run"
    EXECUTED = "executed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    RESOLVED = "resolved"
    CONTEXT = "context"  # a snapshot of the target: status, pods, logs, events, links
    RECONCILED = "reconciled"  # after a restart: found applied (or not) on the cluster
    VERIFIED = "verified"
    VERIFICATION_FAILED = "verification_failed"
    CIRCUIT_OPENED = "circuit_opened"
    CIRCUIT_CLOSED = "circuit_closed"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPROVAL_DENIED = "approval_denied"  # someone who may not approve clicked
    APPROVAL_EXPIRED = "approval_expired"


class BlockReason(StrEnum):
    TEMPLATE_ERROR = "template_error"
    INVALID_NAME = "invalid_name"
    INVALID_PARAMS = "invalid_params"
    NAMESPACE_NOT_ALLOWED = "namespace_not_allowed"
    NAMESPACE_DENIED = "namespace_denied"
    APPROVAL_UNAVAILABLE = "approval_unavailable"
    ACTION_UNAVAILABLE = "action_unavailable"
    ALREADY_EXECUTED = "already_executed"
    ALERT_RESOLVED = "alert_resolved"
    KIND_NOT_ALLOWED = "kind_not_allowed"
    TARGET_BUSY = "target_busy"
    COOLDOWN = "cooldown"
    MAX_RUNS = "max_runs"
    MAX_RUNS_NAMESPACE = "max_runs_namespace"
    NAMESPACE_BUDGET = "namespace_budget"
    CIRCUIT_OPEN = "circuit_open"
    RATE_LIMITED = "rate_limited"
    ACTION_REFUSED = "action_refused"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNBOOK_CHANGED = "runbook_changed"


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
