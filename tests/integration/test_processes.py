"""Exactly once across real server processes on one PostgreSQL, and no loss while the
store is down: Alertmanager's retries land once it is back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.e2e.alertmanager import start_alertmanager
from tests.fakes.kube import objects
from tests.fakes.postgres import Cluster, Postgres
from tests.payloads import alert, crashloop_labels, notification
from tests.processes import TOKEN, config, incidents, post, serve, until

NAMES = [f"web-{i}" for i in range(6)]


def verified(found: list[dict]) -> bool:
    return all(any(e["kind"] == "verified" for e in d["events"]) for d in found)


async def test_two_processes_on_one_postgresql_act_once(tmp_path, fake_kube, postgres: Postgres):
    for name in NAMES:
        fake_kube.add(objects.deployment(name, "prod"))
    store = postgres.url(await postgres.create())
    settings = config(tmp_path, fake_kube, store)
    body = notification(*(alert(crashloop_labels(deployment=n)) for n in NAMES))
    async with serve(tmp_path, settings) as (a, _), serve(tmp_path, settings) as (b, _):
        # An HA pair delivers the same notification to both, then re-sends it on
        # repeat_interval: four deliveries of each alert, over two processes.
        assert await asyncio.gather(post(a, body), post(b, body)) == [200, 200]
        assert await asyncio.gather(post(b, body), post(a, body)) == [200, 200]

        async def done():
            found = await incidents(a)
            return found if len(found) == len(NAMES) and verified(found) else None

        found = await until(done, what="every alert verified", timeout=30)
    patched = sorted(p.path.rsplit("/", 1)[1] for p in fake_kube.mutations("PATCH"))
    assert patched == NAMES  # one restart per alert instance, across both processes
    for d in found:
        assert len(d["executions"]) == 1
        assert d["notifications"] == 4


async def test_store_down_answers_503_and_alertmanagers_retry_lands(tmp_path, fake_kube):
    fake_kube.add(objects.deployment("web", "prod"))
    cluster = await asyncio.to_thread(Cluster)
    await asyncio.to_thread(cluster.start)
    am = None
    try:
        store = cluster.server.url(await cluster.server.create(migrated=False))
        settings = config(tmp_path, fake_kube, store)
        async with serve(tmp_path, settings) as (url, _):
            am = await asyncio.to_thread(
                start_alertmanager,
                tmp_path / "am",
                receiver_url=f"{url}/api/v1/alerts",
                bearer_token=TOKEN,
                group_wait="1s",
                group_interval="1s",
            )
            await asyncio.to_thread(cluster.stop)
            labels = crashloop_labels()
            await am.fire(labels, {"summary": "crash looping"}, datetime.now(UTC))

            async def refused():
                async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as resp:
                    text = await resp.text()
                return 'remediator_webhook_requests_total{code="503"}' in text

            await until(refused, what="a 503 while the store is down", timeout=20)
            assert await listing_status(url) == 503  # reads say "retry later" too
            status, body = await readiness(url)
            assert status == 503  # a load balancer takes it out of rotation
            assert any(p.startswith("store unavailable") for p in body["problems"])

            await asyncio.to_thread(cluster.start)

            async def ready_again() -> bool:
                return (await readiness(url))[0] == 200

            await until(ready_again, what="/readyz back to 200 with the store", timeout=30)

            async def done():
                found = await incidents(url)
                return found if found and verified(found) else None

            found = await until(done, what="Alertmanager's retry to land", timeout=60)
        assert len(found) == 1
        assert len(fake_kube.mutations("PATCH")) == 1
    finally:
        if am is not None:
            am.stop()
        await asyncio.to_thread(cluster.stop)
        cluster.remove()


async def readiness(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as resp:
        return resp.status, await resp.json()


async def listing_status(url: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s,
        s.get(f"{url}/api/v1/incidents") as resp,
    ):
        return resp.status


@pytest.mark.timeout(300)
async def test_burst_through_alertmanager_survives_a_sigkill(
    tmp_path, fake_kube, postgres: Postgres
):
    """1,000 alerts through a real Alertmanager; the server is SIGKILLed mid-burst and
    restarted on the same address: every alert is stored, every step recorded once."""
    store = postgres.url(await postgres.create())
    # Shadow mode, with limits out of reach: every alert's step must be recorded once.
    guards = {
        "dry_run": True,
        "rate": {"per_minute": 100000, "burst": 100000},
        "breaker": {"max_targets": 100000},
    }
    # The killed process's claimed work is handed out again after worker.stale_after
    # (default 5 min, longer than any action may take); shortened for a dry run.
    settings = config(tmp_path, fake_kube, store, guards=guards, worker={"stale_after": 3})
    from tests.processes import free_port

    port = free_port()
    total, shards = 1000, 20
    am = await asyncio.to_thread(
        start_alertmanager,
        tmp_path / "am",
        receiver_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        bearer_token=TOKEN,
        group_wait="1s",
        group_interval="1s",
        group_by=["alertname", "shard"],
    )
    try:
        async with serve(tmp_path, settings, port=port) as (url, process):
            now = datetime.now(UTC)
            alerts = [
                {
                    "labels": {
                        **crashloop_labels(deployment=f"web-{i}"),
                        "shard": str(i % shards),
                    },
                    "annotations": {"summary": f"alert {i}"},
                    "startsAt": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                }
                for i in range(total)
            ]
            for start in range(0, total, 100):  # a burst, in ten posts
                await am.post_alerts(alerts[start : start + 100])
                await asyncio.sleep(0.1)

            async def some_stored():
                async with (
                    aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s,
                    s.get(f"{url}/api/v1/incidents", params={"limit": "1"}) as resp,
                ):
                    return resp.status == 200 and (await resp.json())["items"]

            await until(some_stored, what="the first deliveries", timeout=30)
            process.kill()  # SIGKILL, mid-burst
            await process.wait()
        # The kill came with the burst under way: some alerts stored, not all processed.
        at_kill = await tally(store)
        assert at_kill["incidents"] > 0, at_kill
        assert at_kill["executed"] < total, at_kill
        async with serve(tmp_path, settings, port=port):

            async def all_done():
                counts = await tally(store)
                return counts if counts["executed"] == total else None

            counts = await until(all_done, what="every alert stored and processed", timeout=150)
    finally:
        am.stop()
    assert counts == {
        "incidents": total,  # every alert stored, none twice
        "instances": total,
        "executed": total,  # every incident's step recorded ...
        "executions": total,  # ... exactly once
        "deployments": total,
    }


async def tally(store: str) -> dict[str, int]:
    """Counts straight from the store: faster than 1,000 API reads per poll."""
    conn = await asyncpg.connect(store.replace("postgresql+asyncpg", "postgresql"))
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM incidents) AS incidents,
                      (SELECT count(DISTINCT (fingerprint, starts_at)) FROM alerts) AS instances,
                      (SELECT count(DISTINCT incident_id) FROM executions) AS executed,
                      (SELECT count(*) FROM executions) AS executions,
                      (SELECT count(DISTINCT labels->>'deployment') FROM alerts) AS deployments"""
        )
    finally:
        await conn.close()
    return dict(row)
