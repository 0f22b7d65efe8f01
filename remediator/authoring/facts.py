"""Alert instances made up from sample alerts, for explain and runbook tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from remediator.models.alert import AlertInstance

SAMPLE_START = datetime(2025, 1, 1, tzinfo=UTC)


def sample_instance(
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    *,
    fingerprint: str = "0000000000000000",
    starts_at: datetime = SAMPLE_START,
    generator_url: str = "",
    external_url: str = "",
) -> AlertInstance:
    return AlertInstance(
        incident_id="sample",
        incident_status="open",
        fingerprint=fingerprint,
        status="firing",
        starts_at=starts_at,
        labels=dict(labels),
        annotations=dict(annotations or {}),
        generator_url=generator_url,
        external_url=external_url,
    )
