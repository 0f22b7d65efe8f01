"""What the incident API returns; also the source of the OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class TimelineEvent(Out):
    id: int
    at: datetime
    stage: str
    kind: str
    runbook: str | None
    reason: str | None = Field(description="Why a step was blocked, skipped or failed.")
    message: str
    data: dict[str, Any]


class Execution(Out):
    runbook: str
    version: str
    step: int
    action: str
    target: str
    dry_run: bool
    status: str
    detail: str
    created_at: datetime
    finished_at: datetime | None


class IncidentSummary(Out):
    id: str
    status: str
    alertname: str
    namespace: str
    severity: str
    summary: str
    team: str = Field(description="The owning team, once a runbook matched.")
    fingerprint: str
    starts_at: datetime
    notifications: int = Field(description="Webhook deliveries of this alert instance.")
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class IncidentDetail(IncidentSummary):
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    external_url: str
    group_key: str
    events: list[TimelineEvent]
    executions: list[Execution]


class IncidentPage(Out):
    items: list[IncidentSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class ErrorBody(Out):
    error: str
    field: str | None = None
