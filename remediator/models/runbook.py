"""The runbook schema: what authors write in ``runbooks/*.yaml``.

Every model forbids unknown keys, so a typo (``stpes:``) is an error at lint time rather
than a silently ignored guard. Action names and parameters are checked against the
action registry by the loader, which knows the registry; this module knows no actions.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from remediator.models.duration import Duration

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(Strict):
    """What a runbook acts on; each field is a Jinja2 template over the alert."""

    kind: str = Field(description="Kubernetes kind, e.g. Deployment, Rollout, Certificate.")
    namespace: str = Field(description="Template, e.g. '{{ labels.namespace }}'.")
    name: str = Field(
        default="",
        description="Template for the object name; empty for namespace-wide actions.",
    )


class Step(Strict):
    """One action with its parameters; string parameters are templates."""

    action: str = Field(description="A registered action: notify, restart, rollback, ...")
    params: dict[str, Any] = Field(default_factory=dict)


class RunLimit(Strict):
    count: Annotated[int, Field(ge=1)]
    window: Duration = Field(json_schema_extra={"examples": ["1h"]})


class Guards(Strict):
    """Per-runbook policy on top of the server-wide guards."""

    dry_run: bool = Field(
        default=False,
        description="Shadow mode for this runbook: record what would happen, touch nothing.",
    )
    cooldown: Duration = Field(
        default=timedelta(minutes=10),
        description="No second run of this runbook on the same target within this time.",
        json_schema_extra={"default": "10m"},
    )
    max_runs: RunLimit | None = Field(
        default=None, description="At most this many runs of this runbook per window."
    )
    max_runs_per_namespace: RunLimit | None = Field(
        default=None,
        description="At most this many runs of this runbook per namespace per window.",
    )


class Approvers(Strict):
    users: list[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]+$")]] = Field(
        default_factory=list, description="Slack user ids, e.g. U024BE7LH."
    )
    groups: list[Annotated[str, Field(pattern=r"^S[A-Z0-9]+$")]] = Field(
        default_factory=list, description="Slack user-group ids, e.g. S0614TZR7."
    )


class Approval(Strict):
    """Whether a person must approve before the steps run, and who."""

    required: bool = False
    when: list[str] = Field(
        default_factory=list,
        description="Matchers; when set, approval is required only for alerts matching all.",
    )
    approvers: Approvers = Field(
        default_factory=Approvers,
        description="Who may approve; empty means the server's slack.approvers.",
    )
    min_approvals: Annotated[int, Field(ge=1, le=5)] = Field(
        default=1, description="Approvals from different people needed, e.g. 2."
    )
    ttl: Duration = Field(
        default=timedelta(minutes=30),
        description="How long the request stays open; then it expires and escalates.",
        json_schema_extra={"default": "30m"},
    )
    channel: str | None = Field(
        default=None, description="Slack channel id; default: the server's slack.channel."
    )


class Verify(Strict):
    timeout: Duration = Field(
        default=timedelta(minutes=5),
        description="How long the target may take to heal.",
        json_schema_extra={"default": "5m"},
    )


class RunbookContext(Strict):
    """More or less context than the server's defaults, for this runbook's incidents."""

    enabled: bool = True
    log_lines: Annotated[int, Field(ge=0, le=500)] | None = Field(
        default=None, description="Override context.log_lines; 0 reads no logs."
    )
    events_window: Duration | None = Field(
        default=None,
        description="Override context.events_window.",
        json_schema_extra={"examples": ["30m"]},
    )
    links: dict[str, str] = Field(
        default_factory=dict, description="Extra name → URL template links."
    )


class TestAlert(Strict):
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)


class ExpectedStep(Strict):
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None


class ExpectedTarget(Strict):
    kind: str
    namespace: str
    name: str = ""


class Expectation(Strict):
    """The plan a test alert must produce, or the reason it must produce none."""

    match: bool = True
    target: ExpectedTarget | None = None
    steps: list[ExpectedStep] | None = None
    refused: str | None = Field(
        default=None, description="Expected refusal reason, e.g. invalid_name."
    )


class TestCase(Strict):
    name: str
    alert: TestAlert
    expect: Expectation


class Runbook(Strict):
    """One remediation: which alerts it takes, what it does, and under which guards."""

    name: Annotated[str, Field(max_length=63)]
    version: str = Field(
        description="Bumped by the author on every behavioural change, e.g. 3 or '1.10'.",
        json_schema_extra={"type": ["string", "integer"]},
    )
    owner: str = Field(description="The owning team.")
    description: str = ""
    match: Annotated[list[str], Field(min_length=1)]
    target: Target
    steps: Annotated[list[Step], Field(min_length=1)]
    guards: Guards = Field(default_factory=Guards)
    approval: Approval = Field(default_factory=Approval)
    verify: Verify = Field(default_factory=Verify)
    escalate: list[Step] = Field(default_factory=list)
    context: RunbookContext = Field(default_factory=RunbookContext)
    tests: list[TestCase] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits and '-' (DNS-1123 label)")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        if isinstance(value, float):
            # YAML reads 1.10 as the number 1.1; refuse rather than collide two versions.
            raise ValueError(f"write a dotted version as a string, e.g. version: '{value}'")
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
