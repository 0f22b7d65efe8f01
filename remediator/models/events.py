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
    EXECUTE = "execute"
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
    RESOLVED = "resolved"


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


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
