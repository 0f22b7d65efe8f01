"""Shared fixtures: settings on a temporary SQLite store and the shipped-style runbooks."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient

from remediator.app import create_app
from remediator.settings import Settings

if TYPE_CHECKING:  # a plugin below; importing it here would skip its assert rewriting
    from tests.fakes.postgres import Postgres

# The fake Kubernetes and Slack servers (fake_kube, fake_slack, ...) for every test.
pytest_plugins = [
    "tests.fakes.kube.fixtures",
    "tests.fakes.slack.fixtures",
    "tests.fakes.postgres",
]

# Modules whose tests run on both stores; everything else runs on the embedded SQLite.
BOTH_STORES = {
    "test_guards",
    "test_webhook",
    "test_pipeline",
    "test_incidents_api",
    "test_executor",
    "test_approvals",
    "test_replicas",
    "test_retention",
    "test_context",
    "test_crash",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        both = module in BOTH_STORES and not metafunc.definition.get_closest_marker("sqlite_only")
        stores = ["sqlite", "postgresql"] if both else ["sqlite"]
        metafunc.parametrize("backend", stores)


FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def runbook_dir(tmp_path: Path) -> Path:
    target = tmp_path / "runbooks"
    shutil.copytree(FIXTURES / "runbooks", target)
    return target


@pytest.fixture
async def store_url(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> AsyncIterator[str]:
    """The store a test runs on: a SQLite file, or a fresh PostgreSQL database."""
    if backend != "postgresql":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    server: Postgres = request.getfixturevalue("postgres")
    yield server.url(await server.create())


@pytest.fixture
def settings(tmp_path: Path, runbook_dir: Path, store_url: str) -> Settings:
    return Settings.load(
        None,
        **{
            "auth.bearer_token": TOKEN,
            "store.url": store_url,
            "store.sqlite_synchronous": "NORMAL",
            "runbooks.dir": runbook_dir,
            "runbooks.watch": False,
            "guards.dry_run": True,
            "guards.namespaces": {"allow": ["prod", "stage"], "deny": ["kube-system"]},
            "guards.kinds": {"allow": ["*"]},
            "worker.poll_interval": 0.05,
        },
    )


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


class Clock:
    """Real time, moved forward by the test: windows pass at once, and the app's own
    short waits (verify looks, retries) still see time go by."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 5.0, interval: float = 0.02
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def settled(client: Any, ends: set[str], count: int = 1) -> list[dict[str, Any]]:
    """Details of the incidents (at least ``count``) once each has an event of a kind in
    ``ends``."""

    async def probe() -> list[dict[str, Any]] | None:
        items = (await (await client.get("/api/v1/incidents", headers=AUTH)).json())["items"]
        if len(items) < count:
            return None
        details = [
            await (await client.get(f"/api/v1/incidents/{i['id']}", headers=AUTH)).json()
            for i in items
        ]
        done = all(any(e["kind"] in ends for e in d["events"]) for d in details)
        return details if done else None

    found: list[dict[str, Any]] = await eventually(probe, timeout=20)
    return found
