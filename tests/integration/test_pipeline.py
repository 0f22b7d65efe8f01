"""The worker's path for an alert: match → plan → guard → execute, as the timeline tells it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from aiohttp import web
from sqlalchemy import select
from structlog.testing import LogCapture

from remediator.actions.registry import builtin_actions
from remediator.app import create_app
from remediator.errors import ConfigError
from remediator.models.alert import Notification
from remediator.observability.metrics import Metrics
from remediator.pipeline.approve import Approver
from remediator.pipeline.build import Pipeline
from remediator.pipeline.context import ContextStage
from remediator.pipeline.execute import Runtime
from remediator.pipeline.record import Recorder
from remediator.pipeline.route import Router
from remediator.pipeline.worker import Worker
from remediator.runbooks.reload import RunbookRegistry
from remediator.settings import GuardSettings, KindPolicy, KubeSettings, NamespacePolicy, Settings
from remediator.store import jobs
from remediator.store.db import create_engine, migrate
from remediator.store.ingest import IngestWriter
from remediator.store.tables import jobs as jobs_table
from remediator.store.timeline import get_incident
from tests.conftest import AUTH, eventually
from tests.payloads import alert, crashloop_labels, notification

NOTIFY_RUNBOOK = """\
name: disk-full
version: 1
owner: storage
match: ['alertname="DiskFull"']
target: {kind: PersistentVolumeClaim, namespace: "{{ labels.namespace }}", name: "{{ labels.pvc }}"}
steps:
  - action: notify
    params: {message: "{{ labels.pvc }} is full", channel: "#storage"}
"""

APPROVAL_RUNBOOK = """\
name: scale-up
version: 1
owner: web-team
match: ['alertname="Saturated"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
steps:
  - action: scale
    params: {delta: 2, min: 2, max: 10}
approval:
  required: true
  when: ['namespace="prod"']
"""


def with_guards(settings: Settings, **guards: object) -> Settings:
    guards.setdefault("kinds", KindPolicy(allow=["*"]))
    return settings.model_copy(update={"guards": GuardSettings(**guards)})


async def timeline_of(client, **filters):
    """The one incident's detail once its job has run to a terminal event."""

    async def probe():
        resp = await client.get("/api/v1/incidents", params=filters, headers=AUTH)
        items = (await resp.json())["items"]
        if len(items) != 1:
            return None
        full = await (await client.get(f"/api/v1/incidents/{items[0]['id']}", headers=AUTH)).json()
        terminal = {"dry_run", "executed", "failed", "blocked", "no_match", "skipped", "cancelled"}
        return full if any(e["kind"] in terminal for e in full["events"]) else None

    return await eventually(probe)


def kinds(full):
    return [e["kind"] for e in full["events"]]


def blocked(full):
    [event] = [e for e in full["events"] if e["kind"] == "blocked"]
    return event


async def post(client, *alerts):
    resp = await client.post("/api/v1/alerts", json=notification(*alerts), headers=AUTH)
    assert resp.status == 200, await resp.text()


async def test_dry_run_records_what_would_happen_and_touches_nothing(client):
    await post(client, alert())
    full = await timeline_of(client)
    assert kinds(full) == ["received", "matched", "planned", "dry_run"]
    dry = full["events"][-1]
    assert dry["message"].startswith("would restart Deployment prod/web")
    assert dry["stage"] == "execute"
    planned = full["events"][2]
    assert planned["data"]["target"] == {"kind": "Deployment", "namespace": "prod", "name": "web"}
    [execution] = full["executions"]
    assert (execution["action"], execution["dry_run"], execution["status"]) == (
        "restart",
        True,
        "dry_run",
    )
    assert execution["target"] == "Deployment/prod/web"


async def test_unmatched_alert_is_recorded_as_no_match(client):
    await post(client, alert({"alertname": "SomethingElse", "namespace": "prod"}))
    full = await timeline_of(client)
    assert kinds(full) == ["received", "no_match"]
    assert full["executions"] == []


async def test_namespace_not_allowed_is_blocked_before_any_action(client):
    await post(client, alert(crashloop_labels(namespace="payments")))
    full = await timeline_of(client)
    assert kinds(full) == ["received", "matched", "planned", "blocked"]
    event = blocked(full)
    assert (event["stage"], event["reason"]) == ("guard", "namespace_not_allowed")
    assert full["executions"] == []


async def test_deny_wins_over_allow(aiohttp_client, settings):
    policy = NamespacePolicy(allow=["*"], deny=["kube-*"])
    client = await aiohttp_client(create_app(with_guards(settings, namespaces=policy)))
    await post(client, alert(crashloop_labels(namespace="kube-public")))
    event = blocked(await timeline_of(client))
    assert event["reason"] == "namespace_denied"
    assert "kube-*" in event["message"]


@pytest.mark.parametrize(
    ("labels", "reason", "fragment"),
    [
        (crashloop_labels(deployment="web/../../secrets"), "invalid_name", "web/../../secrets"),
        (crashloop_labels(deployment="{{ 7*7 }}"), "invalid_name", "{{ 7*7 }}"),
        (crashloop_labels(deployment="Web"), "invalid_name", "'Web'"),
        (crashloop_labels(deployment="x" * 254), "invalid_name", "DNS-1123 subdomain"),
        (crashloop_labels(namespace="prod,kube-system"), "invalid_name", "target.namespace"),
        (crashloop_labels(namespace="a" * 64), "invalid_name", "DNS-1123 label"),
        (
            {k: v for k, v in crashloop_labels().items() if k != "deployment"},
            "template_error",
            "deployment",
        ),
    ],
)
async def test_hostile_or_missing_labels_are_refused_at_plan(client, labels, reason, fragment):
    await post(client, alert(labels))
    full = await timeline_of(client)
    assert kinds(full) == ["received", "matched", "blocked"]
    event = blocked(full)
    assert (event["stage"], event["reason"]) == ("plan", reason)
    assert fragment in event["message"]
    assert full["executions"] == []


async def test_live_mode_without_a_cluster_config_refuses_to_start(
    aiohttp_client, settings, tmp_path
):
    live = with_guards(settings, dry_run=False, namespaces=NamespacePolicy(allow=["prod"]))
    live = live.model_copy(
        update={"kube": KubeSettings(source="kubeconfig", kubeconfig=tmp_path / "missing")}
    )
    runner = web.AppRunner(create_app(live))
    with pytest.raises(ConfigError, match=r"kube\.kubeconfig: .*missing does not exist"):
        await runner.setup()
    await runner.cleanup()


def on_fake(settings: Settings, fake) -> Settings:
    kube = KubeSettings(source="kubeconfig", kubeconfig=fake.kubeconfig, deadline=5)
    return settings.model_copy(update={"kube": kube})


async def test_per_runbook_dry_run_holds_even_when_live(
    aiohttp_client, settings, runbook_dir, fake_kube
):
    path = runbook_dir / "crashloop.yaml"
    path.write_text(path.read_text() + "guards:\n  dry_run: true\n")
    live = with_guards(settings, dry_run=False, namespaces=NamespacePolicy(allow=["prod"]))
    live = on_fake(live, fake_kube)
    client = await aiohttp_client(create_app(live))
    await post(client, alert())
    full = await timeline_of(client)
    assert kinds(full)[-1] == "dry_run"
    assert fake_kube.mutations() == []


async def test_notify_runs_live_and_is_recorded(aiohttp_client, settings, runbook_dir, fake_kube):
    (runbook_dir / "disk.yaml").write_text(NOTIFY_RUNBOOK)
    # No namespace allowed: notify changes nothing, so no guard stands in its way.
    live = on_fake(with_guards(settings, dry_run=False), fake_kube)
    client = await aiohttp_client(create_app(live))
    await post(client, alert({"alertname": "DiskFull", "namespace": "db", "pvc": "data-0"}))
    full = await timeline_of(client)
    assert kinds(full) == ["received", "matched", "planned", "context", "executed"]
    assert (
        full["events"][-1]["message"]
        == "notified about PersistentVolumeClaim db/data-0: data-0 is full"
    )
    [execution] = full["executions"]
    assert (execution["dry_run"], execution["status"]) == (False, "done")
    assert fake_kube.mutations() == []  # context capture reads; notify changes nothing


async def test_approval_required_blocks_live_and_is_noted_in_dry_run(
    aiohttp_client, settings, runbook_dir, fake_kube, tmp_path
):
    (runbook_dir / "scale.yaml").write_text(APPROVAL_RUNBOOK)
    labels = {"alertname": "Saturated", "namespace": "prod", "deployment": "api"}
    dry = await aiohttp_client(create_app(settings))
    await post(dry, alert(labels))
    assert (await timeline_of(dry))["events"][-1]["message"].endswith(
        "(approval would be requested first)"
    )
    live_settings = on_fake(
        with_guards(settings, dry_run=False, namespaces=NamespacePolicy(allow=["*"])), fake_kube
    )
    live_store = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"  # a store of its own
    live_settings = live_settings.model_copy(
        update={"store": live_settings.store.model_copy(update={"url": live_store})}
    )
    live = await aiohttp_client(create_app(live_settings))
    await post(live, alert(labels))
    assert blocked(await timeline_of(live))["reason"] == "approval_unavailable"
    # Outside prod the `when:` matcher does not hold: no approval needed, a dry run is fine.
    await post(dry, alert({**labels, "namespace": "stage"}))
    full = await timeline_of(dry, namespace="stage")
    assert not full["events"][-1]["message"].endswith("(approval would be requested first)")


async def test_alert_resolved_before_processing_is_cancelled(client):
    # Firing and resolved in one delivery: the job exists, but the incident is closed.
    await post(client, alert(), alert(status="resolved"))
    full = await timeline_of(client)
    assert kinds(full) == ["received", "resolved", "cancelled"]
    assert full["events"][-1]["reason"] == "alert_resolved"
    assert full["executions"] == []


def _clock() -> datetime:
    return datetime.now(UTC)


async def _stored_instance(settings: Settings):
    engine = create_engine(settings.store.url)
    await migrate(engine)
    writer = IngestWriter(engine, _clock)
    writer.start()
    await writer.write(Notification.model_validate(notification()))
    await writer.stop()
    return engine


async def _pipeline(settings: Settings, engine, metrics: Metrics) -> Pipeline:
    """The worker's pipeline on ``engine``, with no cluster and no Slack."""
    registry = RunbookRegistry(settings.runbooks.dir, builtin_actions(), metrics)
    assert await registry.load()
    runtime = Runtime(kube=None, clock=_clock, verify_interval=timedelta(seconds=1))
    approver = Approver(settings.slack, None, "", _clock, Router(settings.routing, settings.slack))
    context = ContextStage(None, settings.context, _clock)
    return Pipeline(
        engine,
        registry,
        builtin_actions(),
        settings.guards,
        Recorder(metrics),
        runtime,
        approver,
        context,
    )


async def test_a_retried_job_never_runs_a_step_twice(settings):
    engine = await _stored_instance(settings)
    pipeline = await _pipeline(settings, engine, Metrics())
    [job] = await jobs.claim(engine, "w1", _clock(), 10)
    await pipeline.process([job])
    await pipeline.process([job])  # as if the job were handed out again after a crash
    full = await get_incident(engine, job.incident_id)
    assert full is not None
    assert [e.kind for e in full.events].count("dry_run") == 1
    assert full.events[-1].kind == "skipped"
    assert full.events[-1].reason == "already_executed"
    assert len(full.executions) == 1
    await engine.dispose()


class _IdleWorker:
    """What the ingest writer sees of a worker waiting idle with ``slots`` free."""

    id = "w1"

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.handed: list[jobs.Job] = []

    def free_slots(self) -> int:
        return self.slots

    def hand(self, claimed: list[jobs.Job]) -> None:
        self.handed.extend(claimed)


async def test_an_idle_worker_is_handed_new_alerts_already_claimed(settings):
    engine = create_engine(settings.store.url)
    await migrate(engine)
    writer = IngestWriter(engine, _clock)
    idle = _IdleWorker(slots=2)
    writer.hand_to(idle)
    writer.start()
    three = [alert(crashloop_labels(deployment=name)) for name in ("a", "b", "c")]
    await writer.write(Notification.model_validate(notification(*three)))
    await writer.stop()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(jobs_table).order_by(jobs_table.c.id))).all()
    # Two go to the idle worker, claimed in the ingest transaction; one waits for any worker.
    assert [(r.status, r.claimed_by, r.attempts) for r in rows] == [
        ("running", "w1", 1),
        ("running", "w1", 1),
        ("pending", None, 0),
    ]
    assert [(j.id, j.incident_id) for j in idle.handed] == [(r.id, r.incident_id) for r in rows[:2]]
    assert [j.id for j in await jobs.claim(engine, "w2", _clock(), 10)] == [rows[2].id]
    await engine.dispose()


async def test_handed_jobs_are_finished_even_when_stopping(settings):
    engine = await _stored_instance(settings)
    metrics = Metrics()
    worker = Worker(
        engine,
        await _pipeline(settings, engine, metrics),
        Recorder(metrics),
        settings.worker,
        metrics,
        _clock,
        ready=lambda: True,
    )
    worker.hand(await jobs.claim(engine, worker.id, _clock(), 10))
    worker.start()
    await worker.stop()
    async with engine.connect() as conn:
        statuses = (await conn.execute(select(jobs_table.c.status))).scalars().all()
    assert statuses == ["done"]
    await engine.dispose()


async def test_an_alert_reaching_an_idle_server_needs_no_claim(aiohttp_client, settings):
    # A long poll keeps the worker waiting between looks, so it is surely idle below.
    worker = settings.worker.model_copy(update={"poll_interval": 30})
    client = await aiohttp_client(create_app(settings.model_copy(update={"worker": worker})))
    await eventually(lambda: _ready(client))
    await asyncio.sleep(1.0)  # its first look (claim, queue depth) is long done, even under load
    await post(client, alert())
    assert kinds(await timeline_of(client))[-1] == "dry_run"
    engine = create_engine(settings.store.url)
    async with engine.connect() as conn:
        [job] = (await conn.execute(select(jobs_table))).all()
    await engine.dispose()
    # Claimed in the transaction that created it; a claim would stamp a later time.
    assert (job.status, job.claimed_at) == ("done", job.created_at)


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status == 200


async def test_job_claimed_by_a_crashed_server_is_processed_after_restart(aiohttp_client, settings):
    engine = await _stored_instance(settings)
    [claimed] = await jobs.claim(engine, "crashed-worker", _clock(), 10)
    assert await jobs.claim(engine, "other", _clock(), 10) == []
    await engine.dispose()
    # SQLite has one replica and requeues at start; on PostgreSQL another replica may
    # still be working on it, so it waits for worker.stale_after (shortened here).
    worker = settings.worker.model_copy(update={"stale_after": 0.01})
    client = await aiohttp_client(create_app(settings.model_copy(update={"worker": worker})))
    full = await timeline_of(client)
    assert full["id"] == claimed.incident_id
    assert kinds(full)[-1] == "dry_run"


@contextlib.contextmanager
def capture_logs_with_context() -> Iterator[list[dict[str, Any]]]:
    """capture_logs, plus what the code bound to the context (as the server's logs show)."""
    capture = LogCapture()
    previous = structlog.get_config()["processors"]
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(processors=previous)


async def test_every_log_line_of_a_batch_names_its_incident(
    aiohttp_client, settings, runbook_dir, fake_kube
):
    (runbook_dir / "disk.yaml").write_text(NOTIFY_RUNBOOK)
    client = await aiohttp_client(
        create_app(on_fake(with_guards(settings, dry_run=False), fake_kube))
    )
    # notify logs from inside the action, which knows nothing of incidents.
    disks = [alert({"alertname": "DiskFull", "namespace": "db", "pvc": pvc}) for pvc in "abc"]
    with capture_logs_with_context() as logs:
        await post(client, *disks)

        async def all_done():
            return len([e for e in logs if e["event"] == "notify"]) == 3

        await eventually(all_done)
    resp = await client.get("/api/v1/incidents", headers=AUTH)
    ids = {item["id"] for item in (await resp.json())["items"]}
    notified = [e for e in logs if e["event"] == "notify"]
    assert {e.get("incident_id") for e in notified} == ids
    assert len(ids) == 3
