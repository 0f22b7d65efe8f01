"""Crash safety: the server process is SIGKILLed between recording its intent and
recording the outcome of a restart; the next server must not apply it twice.

The fake API server runs in the test's loop, so the server under test is a real
subprocess and everything here waits asynchronously.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kube import objects
from tests.payloads import alert, notification
from tests.processes import config, incidents, post, serve, until


async def incident(url: str) -> dict[str, Any] | None:
    found = await incidents(url)
    return found[0] if found else None


def generation(fake) -> int:
    return int(fake.get("apps/v1", "Deployment", "prod", "web")["metadata"]["generation"])


@pytest.mark.parametrize("landed", [True, False], ids=["write-landed", "write-lost"])
async def test_kill_between_intent_and_outcome_never_applies_twice(tmp_path, fake_kube, landed):
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    fake_kube.faults.latency = 1.5  # holds every request; the PATCH is in flight when we kill
    if not landed:
        fake_kube.drop_next(1, method="PATCH")  # ... and this one then never reaches the store
    settings = config(tmp_path, fake_kube, f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    async with serve(tmp_path, settings) as (url, process):
        assert await post(url, notification(alert())) == 200
        await until(lambda: fake_kube.mutations("PATCH"), what="the PATCH", timeout=20)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        # The crash left an intent without an outcome.
        assert await execution_status(tmp_path) == "intent"
    await asyncio.sleep(1.7)  # let the held PATCH land (or be dropped)
    assert generation(fake_kube) == (2 if landed else 1)
    fake_kube.faults.latency = 0
    async with serve(tmp_path, settings) as (url, _):

        async def finished():
            d = await incident(url)
            return d if d and d["executions"][0]["status"] == "verified" else None

        done = await until(finished, what="verification after restart", timeout=30)
    kinds = [e["kind"] for e in done["events"]]
    assert ("reconciled" in kinds) is landed
    assert generation(fake_kube) == 2  # exactly one restart reached the cluster
    assert len(fake_kube.mutations("PATCH")) == (1 if landed else 2)


async def execution_status(tmp_path: Path) -> str:
    """The execution's status straight from the store file, with the server dead."""
    import sqlite3

    def read() -> str:
        with sqlite3.connect(tmp_path / "store.db") as db:
            row = db.execute("SELECT status FROM executions").fetchone()
        return str(row[0]) if row else ""

    return await asyncio.to_thread(read)
