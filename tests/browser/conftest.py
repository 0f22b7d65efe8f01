"""Real headless Chromium (Debian's ``chromium``) driven by Playwright, and a server
seeded with incidents whose timelines hold every kind of section the pages render.

The browser is never downloaded by Playwright: it is the distribution's binary, and the
tests fail (never skip) when it is missing, so browser coverage cannot vanish silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright
from pydantic import SecretStr

from remediator.app import create_app
from remediator.settings import ContextSettings, KubeSettings, Settings
from tests.conftest import AUTH, ClientFactory, eventually
from tests.fakes.kube import objects
from tests.payloads import alert, crashloop_labels, notification

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
USER, PASSWORD = "oncall", "browser-password"
CREDENTIALS = {"username": USER, "password": PASSWORD}

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src="x" onerror="alert(2)">'
JS_URL = "javascript:alert(3)"
JS_LOG = "<script>alert(4)</script> fatal: out of memory"

RUNBOOK = """\
name: crashloop
version: 7
owner: web-team
match: ['alertname="KubePodCrashLooping"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
steps:
  - action: restart
approval:
  required: true
  when: ['namespace="prod"']
  approvers: {users: [U1]}
verify: {timeout: 10s}
"""


def with_basic_auth(settings: Settings) -> Settings:
    """The test settings plus basic auth, which browsers can send (the bearer token stays)."""
    auth = settings.auth.model_copy(update={"username": USER, "password": SecretStr(PASSWORD)})
    return settings.model_copy(update={"auth": auth})


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; fails (never skips) with the install command when it is absent."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing; the page tests drive Debian's Chromium: "
            "`DEBIAN_FRONTEND=noninteractive apt-get install -y chromium`",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Dialogs:
    """Every JavaScript dialog a page opened; there must never be one."""

    seen: list[str] = field(default_factory=list)

    async def record(self, dialog: Dialog) -> None:
        self.seen.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser, dialogs: Dialogs) -> AsyncIterator[PageFactory]:
    """Open a page in a fresh context (basic auth when the server asks, unless
    ``http_credentials`` says otherwise); every dialog it opens is recorded."""
    contexts: list[BrowserContext] = []

    async def factory(**options: Any) -> Page:
        ctx = await browser.new_context(
            **{"http_credentials": CREDENTIALS, "viewport": {"width": 1280, "height": 900}}
            | options
        )
        contexts.append(ctx)
        opened = await ctx.new_page()
        opened.on("dialog", dialogs.record)
        return opened

    yield factory
    for ctx in contexts:
        await ctx.close()


@dataclass(frozen=True)
class Seeded:
    """The running server, and the incidents it holds by name (newest first: D, C, B, A)."""

    client: TestClient[Any, Any]
    ids: dict[str, str]

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def detail(self, name: str) -> dict[str, Any]:
        resp = await self.client.get(f"/api/v1/incidents/{self.ids[name]}", headers=AUTH)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


def live(settings: Settings, fake_kube: Any) -> Settings:
    """Live mode against the fake cluster, with a context link built from a label."""
    return with_basic_auth(settings).model_copy(
        update={
            "guards": settings.guards.model_copy(update={"dry_run": False}),
            "kube": KubeSettings(source="kubeconfig", kubeconfig=fake_kube.kubeconfig),
            "worker": settings.worker.model_copy(update={"verify_interval": 0.05}),
            "context": ContextSettings(
                links={
                    "grafana": "https://grafana.example/d/x?var-ns={{ labels.namespace }}",
                    "dashboard": "{{ labels.dashboard | default('') }}",
                }
            ),
        }
    )


def seed_cluster(fake_kube: Any) -> None:
    now = datetime.now(UTC)
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    fake_kube.add(objects.deployment("api", "stage", replicas=1))
    fake_kube.add(
        objects.pod(
            "web-7f9-abcde",
            "prod",
            labels={"app": "web"},
            restarts=7,
            waiting_reason="CrashLoopBackOff",
            ready=False,
            last_terminated_reason="OOMKilled",
        )
    )
    fake_kube.add(objects.pod("web-7f9-fghij", "prod", labels={"app": "web"}))
    fake_kube.set_logs(
        "prod", "web-7f9-abcde", ["starting web 1.4.2", JS_LOG, "exiting"], previous=True
    )
    fake_kube.add(
        objects.event(
            "web-7f9-abcde",
            "prod",
            involved={"kind": "Pod", "name": "web-7f9-abcde", "namespace": "prod"},
            reason="BackOff",
            type="Warning",
            message=f"Back-off restarting failed container {SCRIPT}",
            count=12,
            last_timestamp=now - timedelta(minutes=1),
        )
    )


async def _post(client: TestClient[Any, Any], body: dict[str, Any]) -> None:
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()


async def _events(client: TestClient[Any, Any], incident_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
    events: list[dict[str, Any]] = (await resp.json())["events"]
    return events


async def _newest(client: TestClient[Any, Any]) -> str:
    resp = await client.get("/api/v1/incidents", params={"limit": "1"}, headers=AUTH)
    newest: str = (await resp.json())["items"][0]["id"]
    return newest


async def _until(
    client: TestClient[Any, Any], incident_id: str, kind: str, *, last: str | None = None
) -> list[dict[str, Any]]:
    """The events once ``kind`` is among them (and, if given, ``last`` ends them)."""

    async def probe() -> list[dict[str, Any]] | None:
        events = await _events(client, incident_id)
        kinds = [e["kind"] for e in events]
        done = kind in kinds and (last is None or kinds[-1] == last)
        return events if done else None

    found: list[dict[str, Any]] = await eventually(probe, timeout=15)
    return found


@pytest.fixture
async def seeded(
    aiohttp_client: ClientFactory, settings: Settings, fake_kube: Any, runbook_dir: Path
) -> Seeded:
    """Four incidents through the real pipeline, each finished before the next is sent:

    A: a crash loop in prod with hostile labels, an approval (first someone who may not
       approve, then U1), a live restart, verification and two context snapshots;
    B: a crash loop in stage, restarted without approval;
    C: a full disk, notified and then resolved;
    D: an alert no runbook matches, from an Alertmanager with hostile URLs.
    """
    (runbook_dir / "crashloop.yaml").write_text(RUNBOOK)
    seed_cluster(fake_kube)
    client = await aiohttp_client(create_app(live(settings, fake_kube)))
    ids: dict[str, str] = {}

    hostile = crashloop_labels(note=SCRIPT, dashboard=JS_URL)
    await _post(
        client, notification(alert(hostile, annotations={"summary": f"web crash loops {IMG}"}))
    )
    ids["A"] = await _newest(client)
    events = await _until(client, ids["A"], "approval_requested")
    approval_id = next(e for e in events if e["kind"] == "approval_requested")["data"][
        "approval_id"
    ]
    for by, status in (("U9", 403), ("U1", 200)):
        resp = await client.post(
            f"/api/v1/approvals/{approval_id}/approve", json={"by": by}, headers=AUTH
        )
        assert resp.status == status, await resp.text()
    await _until(client, ids["A"], "verified", last="context")

    stage = crashloop_labels(namespace="stage", deployment="api", pod="api-1", severity="warning")
    await _post(client, notification(alert(stage, starts_at="2025-05-01T09:00:00Z")))
    ids["B"] = await _newest(client)
    await _until(client, ids["B"], "verified", last="context")

    disk = {
        "alertname": "KubePersistentVolumeFillingUp",
        "namespace": "prod",
        "persistentvolumeclaim": "data",
        "severity": "warning",
    }
    await _post(client, notification(alert(disk, starts_at="2025-05-01T11:00:00Z")))
    ids["C"] = await _newest(client)
    await _until(client, ids["C"], "executed")
    resolved = alert(disk, status="resolved", starts_at="2025-05-01T11:00:00Z")
    await _post(client, notification(resolved))
    await _until(client, ids["C"], "resolved")

    latency = {"alertname": "HighLatency", "namespace": "payments", "severity": "warning"}
    body = notification(alert(latency, starts_at="2025-05-01T12:00:00Z"), externalURL=JS_URL)
    body["alerts"][0]["generatorURL"] = JS_URL
    await _post(client, body)
    ids["D"] = await _newest(client)
    await _until(client, ids["D"], "no_match")
    return Seeded(client, ids)
