"""Two replicas on one store: the same webhook delivered to both (an HA Alertmanager
pair), plus repeat-interval re-sends, still acts exactly once.

On PostgreSQL the replicas share the queue through FOR UPDATE SKIP LOCKED and take the
guard lock in turn; on SQLite a second replica is refused at start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from remediator.app import create_app
from remediator.errors import ConfigError
from remediator.settings import KubeSettings, Settings
from remediator.store.db import GUARD_LOCK
from tests.conftest import AUTH, eventually, settled
from tests.fakes.kube import objects
from tests.payloads import alert, crashloop_labels, notification


def live(settings: Settings, fake_kube) -> Settings:
    return settings.model_copy(
        update={
            "guards": settings.guards.model_copy(update={"dry_run": False}),
            "kube": KubeSettings(source="kubeconfig", kubeconfig=fake_kube.kubeconfig),
            "worker": settings.worker.model_copy(update={"verify_interval": 0.05}),
        }
    )


async def replicas_on_web(aiohttp_client: Any, settings: Settings, fake_kube: Any) -> list[Any]:
    """Two live replicas on one store, and the Deployment prod/web their alerts target."""
    fake_kube.add(objects.deployment("web", "prod"))
    configured = live(settings, fake_kube)
    return [await aiohttp_client(create_app(configured)) for _ in range(2)]


async def test_two_replicas_act_once_per_alert(aiohttp_client, settings, fake_kube, backend):
    if backend == "sqlite":
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        try:
            with pytest.raises(ConfigError, match="SQLite serves one replica"):
                await web.AppRunner(create_app(settings)).setup()
        finally:
            await runner.cleanup()
        return
    names = [f"web-{i}" for i in range(8)]
    for name in names:
        fake_kube.add(objects.deployment(name, "prod"))
    configured = live(settings, fake_kube)
    a = await aiohttp_client(create_app(configured))
    b = await aiohttp_client(create_app(configured))
    body = notification(*(alert(crashloop_labels(deployment=n)) for n in names))

    async def deliver(client: Any) -> None:
        resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
        assert resp.status == 200

    # Both Alertmanagers at once, then each again on repeat_interval.
    await asyncio.gather(deliver(a), deliver(b))
    await asyncio.gather(deliver(b), deliver(a))

    details = await settled(a, {"verified"}, count=len(names))
    assert len(details) == len(names)
    assert len(fake_kube.mutations("PATCH")) == len(names)
    assert sorted(p.path.rsplit("/", 1)[1] for p in fake_kube.mutations("PATCH")) == names
    for d in details:
        assert [x["action"] for x in d["executions"]] == ["restart"]
        assert d["notifications"] == 4  # every delivery counted, one instance


async def test_two_replicas_never_both_pass_a_cooldown(
    aiohttp_client, settings, fake_kube, backend
):
    if backend == "sqlite":
        return  # one replica only; see above
    a, b = await replicas_on_web(aiohttp_client, settings, fake_kube)
    # Distinct alert instances for one target, each replica getting half of them at once.
    starts = [f"2025-05-01T10:{m:02d}:00Z" for m in range(10)]

    async def deliver(client: Any, start: str) -> None:
        resp = await client.post(
            "/api/v1/alerts", json=notification(alert(starts_at=start)), headers=AUTH
        )
        assert resp.status == 200

    await asyncio.gather(*(deliver(a if i % 2 else b, s) for i, s in enumerate(starts)))

    details = await settled(a, {"verified", "blocked"}, count=len(starts))
    assert len(fake_kube.mutations("PATCH")) == 1
    reasons = sorted(e["reason"] for d in details for e in d["events"] if e["kind"] == "blocked")
    assert len(reasons) == len(starts) - 1
    assert set(reasons) <= {"cooldown", "target_busy"}


@pytest.mark.parametrize("limit", ["max_runs", "token_bucket"])
async def test_two_replicas_share_one_budget_of_runs(
    aiohttp_client, settings, fake_kube, runbook_dir, backend, limit
):
    """A target per alert, so no target is busy: the run window and the token bucket live
    in the store, so two replicas spend one budget between them, not one each. (This
    timing rarely makes two decisions meet; the guard lock test below makes them meet.)"""
    if backend == "sqlite":
        return  # one replica only; see above
    names = [f"web-{i}" for i in range(10)]
    for name in names:
        fake_kube.add(objects.deployment(name, "prod"))
    configured = live(settings, fake_kube)
    if limit == "max_runs":
        path = runbook_dir / "crashloop.yaml"
        path.write_text(path.read_text() + "guards:\n  max_runs: {count: 2, window: 1h}\n")
    else:
        rate = configured.guards.rate.model_copy(update={"burst": 2, "per_minute": 0.001})
        guards = configured.guards.model_copy(update={"rate": rate})
        configured = configured.model_copy(update={"guards": guards})
    a = await aiohttp_client(create_app(configured))
    b = await aiohttp_client(create_app(configured))

    async def deliver(client: Any, name: str) -> None:
        body = notification(alert(crashloop_labels(deployment=name)))
        resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
        assert resp.status == 200

    await asyncio.gather(*(deliver(a if i % 2 else b, n) for i, n in enumerate(names)))

    details = await settled(a, {"executed", "blocked"}, count=len(names))
    reason = "max_runs" if limit == "max_runs" else "rate_limited"
    blocked = [e["reason"] for d in details for e in d["events"] if e["kind"] == "blocked"]
    assert blocked == [reason] * (len(names) - 2)
    assert len(fake_kube.mutations("PATCH")) == 2


# Sessions waiting for the guard lock in this database (a bigint key: objsubid 1).
GUARD_WAITERS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
  AND ((classid::bigint << 32) | objid::bigint) = $1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def test_the_guard_lock_orders_two_decisions_at_the_same_instant(
    aiohttp_client, settings, fake_kube, backend
):
    """Two replicas each about to decide for one target with a cooldown. The test holds
    the guard lock until both are waiting on it (seen in pg_locks, not guessed from
    time), so both decide the moment it is released: only the lock can make the second
    see the first one's intent."""
    if backend == "sqlite":
        return  # one replica only; see above
    a, b = await replicas_on_web(aiohttp_client, settings, fake_kube)
    conn = await asyncpg.connect(settings.store.url.replace("postgresql+asyncpg", "postgresql"))
    try:

        async def state() -> tuple[int, int]:
            """(sessions waiting for the guard lock, execution rows written)."""
            waiting = await conn.fetchval(GUARD_WAITERS, GUARD_LOCK)
            written = await conn.fetchval("SELECT count(*) FROM executions")
            return waiting, written

        await conn.execute("SELECT pg_advisory_lock($1)", GUARD_LOCK)
        try:
            # Two alert instances for one target, one to each replica: each claims its own.
            for client, start in ((a, "2025-05-01T10:00:00Z"), (b, "2025-05-01T10:01:00Z")):
                body = notification(alert(starts_at=start))
                resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
                assert resp.status == 200

            async def both_waiting_or_one_through() -> tuple[int, int] | None:
                waiting, written = await state()
                return (waiting, written) if waiting == 2 or written else None

            await eventually(both_waiting_or_one_through, timeout=15)
            # While the lock is held, neither decision goes through: no intent, no call.
            for _ in range(20):
                assert await state() == (2, 0), "a guard decision passed a held guard lock"
                assert fake_kube.mutations() == []
                await asyncio.sleep(0.05)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", GUARD_LOCK)

        details = await settled(a, {"verified", "blocked"}, count=2)
        assert await state() == (0, 1)
    finally:
        await conn.close()
    assert len(fake_kube.mutations("PATCH")) == 1
    blocked = [e for d in details for e in d["events"] if e["kind"] == "blocked"]
    assert [e["reason"] in {"cooldown", "target_busy"} for e in blocked] == [True]
    assert sorted(len(d["executions"]) for d in details) == [0, 1]
