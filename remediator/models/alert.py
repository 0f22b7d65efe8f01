"""Alertmanager webhook v4, parsed strictly where it matters and leniently elsewhere.

Newer Alertmanagers add top-level fields (``notification_reason``, ``routeLabels``), so
unknown keys are ignored; the fields we act on are required and typed, so a malformed
payload is refused with the field named instead of being half-processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Go marshals the zero time.Time this way; Alertmanager sends it as endsAt of firing alerts.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

MAX_LABEL_BYTES = 8192


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    if len(value.encode()) > MAX_LABEL_BYTES:
        raise ValueError(f"is longer than {MAX_LABEL_BYTES} bytes")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    # One pass over the whole set: this runs for every alert of every webhook.
    for key, text in value.items():
        if "\x00" in key or "\x00" in text:
            raise ValueError(f"label {key!r} must not contain the NUL character")
        if (
            len(key) + len(text) > MAX_LABEL_BYTES // 4
            and len((key + text).encode()) > MAX_LABEL_BYTES
        ):
            raise ValueError(f"label {key!r} is longer than {MAX_LABEL_BYTES} bytes")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (RFC 3339)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Python datetimes stop at years 1 and 9999; an offset can push a time past either.
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from None


SafeStr = Annotated[str, AfterValidator(_no_nul)]
LabelSet = Annotated[dict[str, str], AfterValidator(_labels)]
Timestamp = Annotated[datetime, AfterValidator(_utc)]
Status = Literal["firing", "resolved"]


class Alert(BaseModel):
    """One alert of a notification; ``(fingerprint, startsAt)`` names the instance."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Status
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: Timestamp
    endsAt: Timestamp | None = None
    generatorURL: SafeStr = ""
    fingerprint: Annotated[SafeStr, Field(min_length=1, max_length=64)]

    @property
    def ends_at(self) -> datetime | None:
        """The real end time, or None for the Go zero time firing alerts carry."""
        if self.endsAt is None or self.endsAt == GO_ZERO_TIME:
            return None
        return self.endsAt


class Notification(BaseModel):
    """The whole webhook body: a group of alerts as Alertmanager sends it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    status: Status
    receiver: SafeStr = ""
    groupKey: SafeStr = ""
    truncatedAlerts: int = 0
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: SafeStr = ""
    alerts: list[Alert]


@dataclass(frozen=True)
class AlertInstance:
    """A stored alert instance: what matching and planning look at."""

    incident_id: str
    incident_status: str
    fingerprint: str
    status: str
    starts_at: datetime
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    external_url: str

    @property
    def is_open(self) -> bool:
        return self.incident_status == "open"
