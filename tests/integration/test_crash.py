"""Crash safety: the server process is SIGKILLed between recording its intent and
recording the outcome of a restart; the next server must not apply it twice, and must
settle the step even when the alert resolved or the runbook changed in between.

The fake API server runs in the test's loop, so the server under test is a real
subprocess and everything here waits asynchronously.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from remediator.store.db import create_engine
from remediator.store.tables import executions
from tests.fakes.kube import objects
from tests.payloads import alert, notification
from tests.processes import config, incidents, post, serve, until

LANDED = pytest.mark.parametrize("landed", [True, False], ids=["write-landed", "write-lost"])


async def incident(url: str) -> dict[str, Any] | None:
    found = await incidents(url)
    return found[0] if found else None


def generation(fake) -> int:
    return int(fake.get("apps/v1", "Deployment", "prod", "web")["metadata"]["generation"])


def live(tmp_path: Path, fake_kube, store_url: str) -> dict[str, Any]:
    # PostgreSQL hands a dead replica's job out again after stale_after (SQLite at start).
    return config(tmp_path, fake_kube, store_url, worker={"stale_after": 1})


async def crash_mid_patch(
    tmp_path: Path,
    fake_kube,
    settings: dict[str, Any],
    store_url: str,
    *,
    landed: bool,
    before_kill: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """SIGKILL the server while its restart PATCH is in flight; the PATCH then lands or
    is lost. ``before_kill`` still talks to the server with the PATCH held."""
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    fake_kube.faults.latency = 1.5  # holds every request; the PATCH is in flight when we kill
    if not landed:
        fake_kube.drop_next(1, method="PATCH")  # ... and this one then never reaches the store
    async with serve(tmp_path, settings) as (url, process):
        assert await post(url, notification(alert())) == 200
        await until(lambda: fake_kube.mutations("PATCH"), what="the PATCH", timeout=20)
        if before_kill is not None:
            await before_kill(url)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        # The crash left an intent without an outcome.
        assert await execution_statuses(store_url) == ["intent"]
    await asyncio.sleep(1.7)  # let the held PATCH land (or be dropped)
    assert generation(fake_kube) == (2 if landed else 1)
    fake_kube.faults.latency = 0


async def verified(url: str) -> dict[str, Any] | None:
    d = await incident(url)
    return d if d and any(x["status"] == "verified" for x in d["executions"]) else None


@LANDED
async def test_kill_between_intent_and_outcome_never_applies_twice(
    tmp_path, fake_kube, store_url, landed
):
    settings = live(tmp_path, fake_kube, store_url)
    await crash_mid_patch(tmp_path, fake_kube, settings, store_url, landed=landed)
    async with serve(tmp_path, settings) as (url, _):
        done = await until(lambda: verified(url), what="verification after restart", timeout=30)
    kinds = [e["kind"] for e in done["events"]]
    assert ("reconciled" in kinds) is landed
    assert generation(fake_kube) == 2  # exactly one restart reached the cluster
    assert len(fake_kube.mutations("PATCH")) == (1 if landed else 2)


@LANDED
async def test_alert_resolved_before_the_restart_still_settles_the_step(
    tmp_path, fake_kube, store_url, landed
):
    """The requeued job finds its alert resolved: the step is settled all the same (else
    its intent would keep the target busy for good), and a later alert acts."""
    settings = live(tmp_path, fake_kube, store_url)

    async def resolve(url: str) -> None:
        assert await post(url, notification(alert(status="resolved"))) == 200

    await crash_mid_patch(
        tmp_path, fake_kube, settings, store_url, landed=landed, before_kill=resolve
    )
    async with serve(tmp_path, settings) as (url, _):

        async def settled() -> dict[str, Any] | None:
            d = await incident(url)
            final = d and {x["status"] for x in d["executions"]} & {"verified", "cancelled"}
            return d if final else None

        first = await until(settled, what="the step settled after restart", timeout=30)
        assert [x["status"] for x in first["executions"]] == ["verified" if landed else "cancelled"]
        kinds = [e["kind"] for e in first["events"]]
        assert ("reconciled" in kinds) is landed
        assert len(fake_kube.mutations("PATCH")) == 1  # never sent again

        assert await post(url, notification(alert(starts_at="2025-05-01T11:00:00Z"))) == 200

        async def later() -> dict[str, Any] | None:
            found = [d for d in await incidents(url) if d["id"] != first["id"]]
            done = found and {e["kind"] for e in found[0]["events"]} & {"blocked", "executed"}
            return found[0] if done else None

        second = await until(later, what="the later alert decided", timeout=30)
    blocked = [e["reason"] for e in second["events"] if e["kind"] == "blocked"]
    # Not target_busy: a step found applied counts as a run (cooldown); one not applied
    # does not, and the later alert restarts the target.
    assert blocked == (["cooldown"] if landed else [])


@LANDED
async def test_runbook_changed_before_the_restart_never_applies_twice(
    tmp_path, fake_kube, store_url, landed
):
    """A new runbook version is a new execution key; the step begun under the old one
    is reconciled first, not applied again under the new one."""
    settings = live(tmp_path, fake_kube, store_url)
    await crash_mid_patch(tmp_path, fake_kube, settings, store_url, landed=landed)
    runbook = tmp_path / "runbooks" / "crashloop.yaml"
    runbook.write_text(runbook.read_text().replace("version: 2", "version: 3"))
    async with serve(tmp_path, settings) as (url, _):
        done = await until(lambda: verified(url), what="verification after restart", timeout=30)
    assert generation(fake_kube) == 2  # exactly one restart reached the cluster
    assert len(fake_kube.mutations("PATCH")) == (1 if landed else 2)
    found = sorted((x["version"], x["status"]) for x in done["executions"])
    assert found == ([("2", "verified")] if landed else [("2", "cancelled"), ("3", "verified")])
    kinds = [e["kind"] for e in done["events"]]
    assert ("reconciled" in kinds) is landed


async def execution_statuses(store_url: str) -> list[str]:
    """Every execution's status straight from the store (the server may be dead)."""
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.scalars(select(executions.c.status))).all())
    finally:
        await engine.dispose()


async def test_a_replay_passes_the_steps_done_and_settles_the_one_begun(
    tmp_path, fake_kube, store_url
):
    """Killed during a runbook's second step: the restarted job skips the first (done)
    and reconciles the second, instead of stopping at the first and leaving it begun."""
    settings = live(tmp_path, fake_kube, store_url)
    runbook = tmp_path / "runbooks" / "crashloop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "steps:\n  - action: restart\n",
            "steps:\n  - action: scale\n    params: {replicas: 3, min: 1, max: 5}\n"
            "  - action: restart\n",
        )
    )
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    fake_kube.faults.latency = 1.5  # holds every request; the restart is in flight at the kill

    def restarts() -> list[Any]:
        return [r for r in fake_kube.mutations("PATCH") if "restartedAt" in json.dumps(r.body)]

    async with serve(tmp_path, settings) as (url, process):
        assert await post(url, notification(alert())) == 200
        await until(restarts, what="the restart PATCH", timeout=20)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        assert await execution_statuses(store_url) == ["applied", "intent"]
    await asyncio.sleep(1.7)  # let the held restart land
    fake_kube.faults.latency = 0
    async with serve(tmp_path, settings) as (url, _):

        async def both_verified() -> dict[str, Any] | None:
            d = await incident(url)
            done = d and [x["status"] for x in d["executions"]] == ["verified", "verified"]
            return d if done else None

        done = await until(both_verified, what="both steps verified after restart", timeout=30)
    kinds = [e["kind"] for e in done["events"]]
    assert "skipped" in kinds
    assert "reconciled" in kinds
    assert len(restarts()) == 1
    assert len(fake_kube.mutations("PATCH", path_contains="/scale")) == 1
