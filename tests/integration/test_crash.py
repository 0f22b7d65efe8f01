"""Crash safety: the server process is SIGKILLed between recording its intent and
recording the outcome of a restart; the next server must not apply it twice.

The fake API server runs in the test's loop, so the server under test is a real
subprocess and everything here waits asynchronously.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import FIXTURES, TOKEN
from tests.fakes.kube import objects
from tests.payloads import alert, notification

RUNBOOK = (FIXTURES / "runbooks" / "crashloop.yaml").read_text()
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def server(tmp_path: Path, fake) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    port = free_port()
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir(exist_ok=True)
    (runbooks / "crashloop.yaml").write_text(RUNBOOK)
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"bearer_token": TOKEN},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "runbooks": {"dir": str(runbooks), "watch": False},
        "guards": {"dry_run": False, "namespaces": {"allow": ["prod"]}, "kinds": {"allow": ["*"]}},
        "kube": {"source": "kubeconfig", "kubeconfig": str(fake.kubeconfig), "deadline": 20},
        "worker": {"poll_interval": 0.05, "verify_interval": 0.05},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "remediator.cli",
            "serve",
            "--config",
            str(path),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await until(lambda: ready(url), what=f"the server ({log_path.read_text()})", timeout=20)
            yield url, process
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def until(probe: Callable[[], Any], *, what: str, timeout: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def incident(url: str) -> dict[str, Any] | None:
    async with aiohttp.ClientSession(headers=HEADERS) as s:
        async with s.get(f"{url}/api/v1/incidents") as resp:
            items = (await resp.json())["items"]
        if not items:
            return None
        async with s.get(f"{url}/api/v1/incidents/{items[0]['id']}") as resp:
            detail: dict[str, Any] = await resp.json()
            return detail


def generation(fake) -> int:
    return int(fake.get("apps/v1", "Deployment", "prod", "web")["metadata"]["generation"])


@pytest.mark.parametrize("landed", [True, False], ids=["write-landed", "write-lost"])
async def test_kill_between_intent_and_outcome_never_applies_twice(tmp_path, fake_kube, landed):
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    fake_kube.faults.latency = 1.5  # holds every request; the PATCH is in flight when we kill
    if not landed:
        fake_kube.drop_next(1, method="PATCH")  # ... and this one then never reaches the store
    async with server(tmp_path, fake_kube) as (url, process):
        async with aiohttp.ClientSession(headers=HEADERS) as s:
            resp = await s.post(f"{url}/api/v1/alerts", json=notification(alert()))
            assert resp.status == 200
        await until(lambda: fake_kube.mutations("PATCH"), what="the PATCH", timeout=20)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        # The crash left an intent without an outcome.
        assert await execution_status(tmp_path) == "intent"
    await asyncio.sleep(1.7)  # let the held PATCH land (or be dropped)
    assert generation(fake_kube) == (2 if landed else 1)
    fake_kube.faults.latency = 0
    async with server(tmp_path, fake_kube) as (url, _):

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
