"""Table definitions (SQLAlchemy Core). Alembic migrations must produce exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend stores.

    SQLite has no datetime type: it gets fixed-width ISO text (always with microseconds,
    so text order is time order), made by C ``isoformat`` rather than SQLAlchemy's slower
    generic formatter, which dominated the webhook's write path.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        # Nearly every value is already in UTC (the clock, validated alerts): no copy then.
        if value.tzinfo is not UTC:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store")
            value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # An aware time's ISO form ends in "+00:00"; cutting it is cheaper than a copy.
            return value.isoformat(" ", "microseconds")[:26]
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


incidents = Table(
    "incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("alertname", Text, nullable=False),
    Column("namespace", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("external_url", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("team", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Index(None, "status", "id"),
    Index(None, "status", "updated_at"),  # retention: the quiet resolved ones, oldest first
    # Each list filter walks its index newest first and stops at a page; without the id
    # SQLite sorted every incident of the namespace (or team, or alertname) per page.
    Index(None, "namespace", "id"),
    Index(None, "alertname", "id"),
    Index(None, "team", "id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text, nullable=False),
    Column("notifications", Integer, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    UniqueConstraint("fingerprint", "starts_at"),
    Index(None, "incident_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("runbook", Text),
    Column("reason", String(64)),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index(None, "incident_id", "id"),
    # The incident list's runbook filter probes it once per incident it walks: with the
    # incident id in the index, each probe is one lookup, not a read of all the
    # runbook's matches (a page of 100,000 incidents took 11 s on the event loop).
    Index(None, "runbook", "kind", "incident_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    # "alert": run a new alert instance through the pipeline; "verify": look once more
    # whether execution ``execution_id`` healed its target.
    Column("kind", String(16), nullable=False, server_default="alert"),
    Column("execution_id", Integer),
    # "approved": run the runbook an approval was granted for; "escalate": after expiry.
    Column("approval_id", String(32)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("not_before", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("claimed_at", UTCDateTime),
    Column("claimed_by", Text),
    Column("finished_at", UTCDateTime),
    Column("last_error", Text),
    Index(None, "status", "not_before"),
    Index(None, "incident_id"),
)

executions = Table(
    "executions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("runbook", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("detail", Text, nullable=False),
    # The value of the remediator.io/execution-id annotation this execution writes.
    Column("uid", String(32)),
    Column("namespace", Text, nullable=False, server_default=""),
    Column("params", JSON, nullable=False, server_default="{}"),
    Column("verify_deadline", UTCDateTime),
    # The exactly-once key: one execution per (runbook, version, step, target, alert instance).
    UniqueConstraint("runbook", "version", "step", "target", "incident_id"),
    Index(None, "incident_id"),
    Index(None, "created_at"),
    Index(None, "target", "status"),
    Index(None, "uid", unique=True),
    # The guards' windows and cooldown (guard_ledger.facts): each a range of one
    # runbook's, namespace's or target's rows, however long the ledger grows.
    Index(None, "runbook", "created_at"),
    Index(None, "namespace", "created_at"),
    Index(None, "target", "created_at"),
)

# Shared guard state that is not derived from executions: the global token bucket and
# the circuit breaker, one JSON document each.
guard_state = Table(
    "guard_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# A person's decision that a runbook's steps may run for one incident. ``approvers`` are
# Slack user ids (groups resolved when the request is made); ``changes`` is what each
# step will change, as the approver was shown it.
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("runbook", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("changes", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("approvers", JSON, nullable=False),
    Column("min_approvals", Integer, nullable=False),
    Column("channel", Text),
    Column("message_ts", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", JSON, nullable=False),
    UniqueConstraint("incident_id", "runbook"),
    Index(None, "status", "expires_at"),
)

# One vote per person per approval: a double click is the same vote.
approval_votes = Table(
    "approval_votes",
    metadata,
    Column("approval_id", String(32), ForeignKey("approvals.id"), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)
