"""Fixtures for end-to-end tests against a real Alertmanager (see ``alertmanager.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

import aiohttp
import pytest

from tests.conftest import FIXTURES
from tests.reaper import spawn

from .alertmanager import (
    ALERTMANAGER_BIN,
    AlertmanagerFactory,
    AlertmanagerProcess,
    ConfigOptions,
    free_port,
    is_ready,
    start_alertmanager,
    stop_process,
)

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/e2e with ``e2e``."""
    for item in items:
        if item.path.resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """Start real Alertmanagers on loopback; every one is stopped at teardown.

    Fails (never skips) when the binary is missing: e2e coverage must not vanish silently.
    """
    if shutil.which(ALERTMANAGER_BIN) is None:
        pytest.fail(
            f"{ALERTMANAGER_BIN} is not on PATH; e2e tests need a real Alertmanager: "
            "install the Debian package with `apt-get install prometheus-alertmanager`",
            pytrace=False,
        )
    started: list[AlertmanagerProcess] = []

    def factory(**config_kwargs: Unpack[ConfigOptions]) -> AlertmanagerProcess:
        am = start_alertmanager(tmp_path / f"alertmanager-{len(started)}", **config_kwargs)
        started.append(am)
        return am

    yield factory
    for am in started:
        am.stop()


# --- remediator server as a real subprocess ---------------------------------------------

E2E_TOKEN = "e2e-token"
SERVER_READY_TIMEOUT = 15.0


@dataclass
class RemediatorServer:
    """A running ``remediator serve``; ``url`` is ``http://127.0.0.1:PORT``."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _owned: ExitStack = field(repr=False)  # the log and the process's reaper

    @property
    def webhook_url(self) -> str:
        """Where Alertmanager should post: ``POST /api/v1/alerts``."""
        return f"{self.url}/api/v1/alerts"

    def log_text(self) -> str:
        """The server's stdout and stderr so far, for assertion messages."""
        return self.log_path.read_text(errors="replace")

    async def get_json(self, path: str, **params: str) -> Any:
        """GET ``path`` with the bearer token; fail (showing the server log) unless 200."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.url}{path}", params=params, headers=headers) as resp,
        ):
            body = await resp.text()
        assert resp.status == 200, (
            f"GET {path} {params} -> {resp.status}: {body}\n--- server log ---\n{self.log_text()}"
        )
        return json.loads(body)

    async def incidents(self, **params: str) -> list[dict[str, Any]]:
        """``GET /api/v1/incidents`` items (newest first)."""
        page = await self.get_json("/api/v1/incidents", **params)
        items: list[dict[str, Any]] = page["items"]
        return items

    async def incident(self, incident_id: str) -> dict[str, Any]:
        """``GET /api/v1/incidents/{id}``: summary, labels, events and executions."""
        detail: dict[str, Any] = await self.get_json(f"/api/v1/incidents/{incident_id}")
        return detail

    async def metrics_text(self) -> str:
        """``GET /metrics`` (no auth): Prometheus text exposition."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.url}/metrics") as resp,
        ):
            body = await resp.text()
        assert resp.status == 200, f"GET /metrics -> {resp.status}: {body}"
        return body

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; close the log. Idempotent."""
        stop_process(self.process, self._owned)


def _write_server_config(tmp_dir: Path, port: int) -> Path:
    runbooks = tmp_dir / "runbooks"
    if not runbooks.exists():
        shutil.copytree(FIXTURES / "runbooks", runbooks)
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"bearer_token": E2E_TOKEN},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_dir / 'store.db'}"},
        "runbooks": {"dir": str(runbooks), "watch": False},
        "guards": {
            "dry_run": True,
            "namespaces": {"allow": ["prod"]},
            "kinds": {"allow": ["*"]},
        },
        "worker": {"poll_interval": 0.1},
        "log": {"level": "info", "format": "json"},
    }
    path = tmp_dir / "remediator.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is valid YAML
    return path


def _launch_server(tmp_dir: Path, attempt: int) -> tuple[RemediatorServer, int]:
    port = free_port()
    config = _write_server_config(tmp_dir, port)
    log_path = tmp_dir / f"server-{attempt}.log"
    argv = [sys.executable, "-m", "remediator.cli", "serve", "--config", str(config)]
    with ExitStack() as owned:
        process = spawn(argv, owned, owned.enter_context(log_path.open("wb")), cwd=tmp_dir)
        url = f"http://127.0.0.1:{port}"
        return RemediatorServer(url, E2E_TOKEN, process, log_path, owned.pop_all()), port


@pytest.fixture
def remediator_server(tmp_path: Path) -> Iterator[RemediatorServer]:
    """``python -m remediator.cli serve`` on loopback: token ``e2e-token``, dry run,
    namespaces allow ``["prod"]``, the runbooks of ``tests/fixtures/runbooks``.

    Ready once ``GET /readyz`` answers 200 (15 s); SIGTERM at teardown.
    """
    tmp_dir = tmp_path / "remediator"
    tmp_dir.mkdir()
    log = ""
    for attempt in range(3):  # retry only if the probed port got taken in between
        server, port = _launch_server(tmp_dir, attempt)
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while time.monotonic() < deadline and server.process.poll() is None:
            if is_ready(port, "/readyz"):
                try:
                    yield server
                finally:
                    server.stop()
                return
            time.sleep(0.05)
        exit_code = server.process.poll()
        server.stop()
        log = server.log_text()
        if exit_code is not None and "address already in use" in log.lower():
            continue
        state = (
            f"not ready after {SERVER_READY_TIMEOUT:.0f} s"
            if exit_code is None
            else f"exited with code {exit_code} before becoming ready"
        )
        pytest.fail(f"remediator at {server.url} {state}; log:\n{log}", pytrace=False)
    pytest.fail(f"remediator could not bind a free port; log:\n{log}", pytrace=False)
