"""Which incidents share an opening snapshot, decided without a cluster."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.actions.registry import builtin_actions
from remediator.authoring.facts import sample_instance
from remediator.pipeline.context import OPENED, SHARED_MAX, ContextStage
from remediator.pipeline.plan import Plan, plan
from remediator.runbooks.loader import load_file
from remediator.settings import ContextSettings

ACTIONS = builtin_actions()
RUNBOOK = """\
name: web
version: 1
owner: t
match: ['alertname="A"']
target: {kind: Deployment, namespace: prod, name: "{{ labels.app }}"}
steps:
  - action: restart
"""


class NoTransaction:
    """Stands in for the work unit: there is no transaction to pause while waiting."""

    async def pause(self) -> None:
        pass

    async def resume(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def runbook(tmp_path: Path):
    path = tmp_path / "web.yaml"
    path.write_text(RUNBOOK)
    return load_file(path, ACTIONS)


def planned(runbook, app: str) -> Plan:
    return plan(runbook, sample_instance({"alertname": "A", "app": app}), ACTIONS)


async def shared_from(stage: ContextStage, p: Plan, incident: str) -> str | None:
    """Open ``incident`` on ``p``'s target; the incident whose reads it shares, if any."""
    instance = dataclasses.replace(sample_instance({"app": p.target.name}), incident_id=incident)
    capture = stage.start(p, instance, OPENED)
    recorded = await capture.result(NoTransaction())  # type: ignore[arg-type]
    assert recorded is not None
    shared = recorded.event.data.get("shared")
    return None if shared is None else str(shared["incident"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stage(clock: Clock) -> ContextStage:
    return ContextStage(None, ContextSettings(enabled="on", reuse=timedelta(seconds=30)), clock)


async def test_an_opening_snapshot_is_shared_within_the_window_only(stage, clock, runbook):
    web = planned(runbook, "web")
    assert await shared_from(stage, web, "i1") is None
    clock.now += timedelta(seconds=29)
    assert await shared_from(stage, web, "i2") == "i1"
    assert await shared_from(stage, planned(runbook, "api"), "i3") is None
    clock.now += timedelta(seconds=1)
    assert await shared_from(stage, web, "i4") is None
    assert await shared_from(stage, web, "i5") == "i4"


async def test_forget_ends_the_sharing_for_that_target_only(stage, runbook):
    web, api = planned(runbook, "web"), planned(runbook, "api")
    await shared_from(stage, web, "i1")
    await shared_from(stage, api, "i2")
    stage.forget(web.target)
    assert await shared_from(stage, web, "i3") is None
    assert await shared_from(stage, api, "i4") == "i2"


async def test_a_storm_over_many_targets_keeps_a_bounded_number_of_snapshots(stage, runbook):
    first = planned(runbook, "web-0")
    await shared_from(stage, first, "i0")
    for n in range(1, SHARED_MAX):
        await shared_from(stage, planned(runbook, f"web-{n}"), f"i{n}")
    assert await shared_from(stage, first, "again") == "i0"  # still kept: SHARED_MAX held
    await shared_from(stage, planned(runbook, "one-more"), "x")
    assert await shared_from(stage, first, "late") is None  # the oldest made room
