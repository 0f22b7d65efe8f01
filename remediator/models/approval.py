"""The approvals API's request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DecisionIn(BaseModel):
    """Who decides; only the approval's listed approvers count."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Z0-9]+$", description="Slack user id."
    )


class DecisionOut(BaseModel):
    outcome: str = Field(
        description="approved, rejected, recorded (more approvals needed), not_approver, "
        "not_pending, expired or unknown."
    )
    message: str


class ApprovalOut(BaseModel):
    id: str
    incident_id: str
    runbook: str
    version: str
    target: str
    status: str = Field(description="pending, approved, rejected or expired.")
    reason: str
    changes: list[str] = Field(description="What each step will change.")
    approvers: list[str]
    min_approvals: int
    expires_at: datetime
    decided_by: list[str]
