"""Exactly once across real server processes on one PostgreSQL, and no loss while the
store is down: Alertmanager's retries land once it is back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp

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

            await asyncio.to_thread(cluster.start)

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


async def listing_status(url: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s,
        s.get(f"{url}/api/v1/incidents") as resp,
    ):
        return resp.status
