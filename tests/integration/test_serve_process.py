"""``remediator serve`` as a process: it refuses to start without credentials, takes them
from the environment, and says loudly (on stderr, whatever the log level) when started
without any; a second server on the same SQLite file is refused; once started, it
freezes what startup built out of the cyclic garbage collector."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import aiohttp

from tests.conftest import FIXTURES
from tests.payloads import alert, notification
from tests.processes import free_port, ready, until

SECRET = "s3cret-from-the-environment"


def write_config(tmp_path: Path, port: int, **log: str) -> Path:
    runbooks = tmp_path / "runbooks"
    shutil.copytree(FIXTURES / "runbooks", runbooks, dirs_exist_ok=True)
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "runbooks": {"dir": str(runbooks), "watch": False},
        "log": {"level": "info", **log},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    return path


async def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None, **log: str):
    port = free_port()
    config = write_config(tmp_path, port, **log)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator.cli", "serve", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**environ, **(env or {})},
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


async def stop(process: asyncio.subprocess.Process) -> tuple[str, str]:
    if process.returncode is None:
        process.terminate()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return out.decode(), err.decode()


async def deliver(url: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(f"{url}/api/v1/alerts", json=notification(alert())) as resp,
    ):
        return resp.status


async def test_without_credentials_it_refuses_to_start_and_says_how(tmp_path):
    process, _ = await start(tmp_path)
    code = await asyncio.wait_for(process.wait(), 60)
    _, err = await stop(process)
    assert code == 2
    assert "auth.bearer_token" in err
    assert "--insecure-no-auth" in err


async def test_credentials_come_from_the_environment_and_are_never_logged(tmp_path):
    process, url = await start(tmp_path, env={"REMEDIATOR_AUTH__BEARER_TOKEN": SECRET})
    try:
        await until(lambda: ready(url), what="the server", timeout=30)
        assert await deliver(url, {"Authorization": "Bearer wrong"}) == 401
        assert await deliver(url, {"Authorization": f"Bearer {SECRET}"}) == 200
    finally:
        out, err = await stop(process)
    assert SECRET not in out + err


async def test_insecure_mode_warns_on_stderr_even_when_logs_are_quiet(tmp_path):
    process, url = await start(tmp_path, "--insecure-no-auth", level="error")
    try:
        await until(lambda: ready(url), what="the server", timeout=30)
        assert await deliver(url, {}) == 200
    finally:
        _, err = await stop(process)
    assert "WARNING" in err
    assert "UNAUTHENTICATED" in err


async def test_a_second_process_on_the_same_sqlite_file_is_refused(tmp_path):
    env = {"REMEDIATOR_AUTH__BEARER_TOKEN": SECRET}
    first, url = await start(tmp_path, env=env)
    try:
        await until(lambda: ready(url), what="the first server", timeout=30)
        second, _ = await start(tmp_path, env=env)  # same config dir, same store.db
        code = await asyncio.wait_for(second.wait(), 60)
        _, err = await stop(second)
        assert code == 2
        assert "another remediator is using" in err
        assert "store.db" in err
        assert await ready(url)  # the first one is untouched
    finally:
        await stop(first)


async def test_what_startup_built_is_frozen_out_of_the_cyclic_gc_once_loaded(tmp_path):
    # Full collections that walk every imported module's objects stall the event loop
    # for tens of milliseconds; the served process freezes them once, after startup.
    process, url = await start(tmp_path, env={"REMEDIATOR_AUTH__BEARER_TOKEN": SECRET})
    try:
        await until(lambda: ready(url), what="the server", timeout=30)
    finally:
        out, err = await stop(process)
    events = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    frozen = [e["objects"] for e in events if e["event"] == "startup_heap_frozen"]
    assert len(frozen) == 1, names
    assert frozen[0] > 100_000
    assert names.index("runbooks_loaded") < names.index("startup_heap_frozen")
