"""Real ``remediator serve`` subprocesses for tests that kill, restart or run several.

The fakes (Kubernetes, Slack) live in the test's event loop, so everything here waits
asynchronously and never blocks it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import FIXTURES, TOKEN
from tests.reaper import reaped

RUNBOOK = (FIXTURES / "runbooks" / "crashloop.yaml").read_text()
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path, fake: Any, store_url: str, **overrides: Any) -> dict[str, Any]:
    """A live server on the fake cluster with the crash-loop runbook."""
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir(exist_ok=True)
    (runbooks / "crashloop.yaml").write_text(RUNBOOK)
    settings: dict[str, Any] = {
        "auth": {"bearer_token": TOKEN},
        "store": {"url": store_url},
        "runbooks": {"dir": str(runbooks), "watch": False},
        "guards": {"dry_run": False, "namespaces": {"allow": ["prod"]}, "kinds": {"allow": ["*"]}},
        "kube": {"source": "kubeconfig", "kubeconfig": str(fake.kubeconfig), "deadline": 20},
        "worker": {"poll_interval": 0.05, "verify_interval": 0.05},
    }
    for section, values in overrides.items():
        settings.setdefault(section, {}).update(values)
    return settings


@asynccontextmanager
async def serve(
    tmp_path: Path, settings: dict[str, Any], *, port: int | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start a server; yield (url, process) once ready; kill it on the way out."""
    port = port or free_port()
    path = tmp_path / f"config-{port}.yaml"
    path.write_text(json.dumps({**settings, "server": {"host": "127.0.0.1", "port": port}}))
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("ab") as log:
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
            start_new_session=True,  # a group of its own, for the reaper
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with reaped(process.pid):  # even if pytest is SIGKILLed
                await until(
                    lambda: ready(url), what=f"the server ({log_path.read_text()})", timeout=20
                )
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


async def post(url: str, body: dict[str, Any]) -> int:
    async with (
        aiohttp.ClientSession(headers=HEADERS) as s,
        s.post(f"{url}/api/v1/alerts", json=body) as resp,
    ):
        return resp.status


async def incidents(url: str) -> list[dict[str, Any]]:
    """Every incident with its detail (timeline and executions)."""
    async with aiohttp.ClientSession(headers=HEADERS) as s:
        async with s.get(f"{url}/api/v1/incidents", params={"limit": "500"}) as resp:
            items = (await resp.json())["items"]
        details = []
        for item in items:
            async with s.get(f"{url}/api/v1/incidents/{item['id']}") as resp:
                details.append(await resp.json())
        return details
