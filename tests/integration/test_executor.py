"""The live path end to end: webhook → guards → a real request to the (fake) cluster →
verify → escalate, as the timeline and the fake API server both tell it."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from remediator.app import create_app
from remediator.keys import ENGINE
from remediator.settings import KubeSettings, Settings
from tests.conftest import AUTH, Clock, eventually, settled
from tests.fakes.kube import objects
from tests.payloads import alert, crashloop_labels, notification

RUNBOOK = """\
name: crashloop
version: 3
owner: web-team
match: ['alertname="KubePodCrashLooping"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
steps:
  - action: restart
verify: {timeout: 30s}
escalate:
  - action: notify
    params: {message: "restart did not heal {{ labels.deployment }}"}
"""


def live(settings: Settings, fake, **guards: Any) -> Settings:
    return settings.model_copy(
        update={
            "guards": settings.guards.model_copy(update={"dry_run": False, **guards}),
            "kube": KubeSettings(
                source="kubeconfig", kubeconfig=fake.kubeconfig, request_timeout=5, deadline=10
            ),
            "worker": settings.worker.model_copy(update={"verify_interval": 0.05}),
        }
    )


@pytest.fixture
async def cluster(fake_kube, runbook_dir):
    (runbook_dir / "crashloop.yaml").write_text(RUNBOOK)
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    return fake_kube


async def post(client, *alerts) -> None:
    resp = await client.post("/api/v1/alerts", json=notification(*alerts), headers=AUTH)
    assert resp.status == 200, await resp.text()


async def settled_after(client, kind: str) -> list[dict[str, Any]]:
    """Details once the snapshot taken after ``kind`` is there too."""

    async def probe():
        [detail] = await settled(client, {kind})
        seen = kinds(detail)
        return [detail] if seen[-1] == "context" and kind in seen else None

    return await eventually(probe)


def event(detail: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e for e in detail["events"] if e["kind"] == kind)


def kinds(detail: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in detail["events"]]


def restarts(fake) -> int:
    """Rollout restarts the fake cluster actually applied (generation counts spec changes)."""
    return fake.get("apps/v1", "Deployment", "prod", "web")["metadata"]["generation"] - 1


async def test_restart_is_applied_once_then_verified(aiohttp_client, settings, cluster):
    client = await aiohttp_client(create_app(live(settings, cluster)))
    await post(client, alert())
    await settled(client, {"verified", "verification_failed"})
    [detail] = await settled_after(client, "verified")
    assert kinds(detail) == [
        "received",
        "matched",
        "planned",
        "context",
        "executed",
        "verified",
        "context",
    ]
    assert event(detail, "executed")["message"].startswith("restarted Deployment prod/web")
    assert [(m.method, m.path) for m in cluster.mutations()] == [
        ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web")
    ]
    [execution] = detail["executions"]
    assert execution["status"] == "verified"
    stamp = cluster.get("apps/v1", "Deployment", "prod", "web")["metadata"]["annotations"]
    assert stamp["remediator.io/runbook"] == "crashloop"
    assert stamp["remediator.io/execution-id"]
    metrics = await (await client.get("/metrics")).text()
    assert 'remediator_actions_total{action="restart",result="succeeded"} 1.0' in metrics
    assert 'remediator_actions_total{action="restart",result="verified"} 1.0' in metrics


@pytest.mark.sqlite_only
async def test_only_the_intent_s_commit_runs_on_the_event_loop(aiohttp_client, settings, cluster):
    # The intent's commit is the last thing before the PATCH, so it skips the hop to
    # aiosqlite's thread; the webhook's and the worker's other commits keep their fsync
    # off the loop.
    client = await aiohttp_client(create_app(live(settings, cluster)))
    async with client.app[ENGINE].connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
    seen: list[tuple[str, int]] = []
    raw._conn.set_trace_callback(lambda sql: seen.append((sql, threading.get_ident())))
    await post(client, alert())
    await settled(client, {"verified", "verification_failed"})
    raw._conn.set_trace_callback(None)
    commits: list[tuple[str, bool]] = []  # (the transaction's statements, on the loop)
    statements: list[str] = []
    for sql, thread in seen:
        if sql.upper().startswith("COMMIT"):
            commits.append((" ".join(statements), thread == threading.get_ident()))
            statements = []
        else:
            statements.append(sql)
    [intent] = [text for text, on_loop in commits if on_loop]
    assert "INSERT INTO executions" in intent
    [webhook] = [on_loop for text, on_loop in commits if "INSERT INTO alerts" in text]
    assert not webhook
    assert len(commits) > 2  # the verify look's, at least, went to the thread too


async def test_breaker_trips_on_too_many_targets_and_says_so(aiohttp_client, settings, cluster):
    cluster.add(objects.deployment("api", "prod"))
    breaker = settings.guards.breaker.model_copy(update={"max_targets": 1})
    client = await aiohttp_client(create_app(live(settings, cluster, breaker=breaker)))
    await post(client, alert())
    await settled(client, {"verified"})
    await post(client, alert(crashloop_labels(deployment="api"), starts_at="2025-05-01T11:00:00Z"))
    details = await settled(client, {"verified", "blocked"}, count=2)
    newest = details[0]
    assert kinds(newest)[-2:] == ["circuit_opened", "blocked"]
    assert newest["events"][-1]["reason"] == "circuit_open"
    assert "2 distinct targets" in newest["events"][-2]["message"]
    metrics = await (await client.get("/metrics")).text()
    assert "remediator_circuit_open 1.0" in metrics
    assert 'remediator_guard_blocks_total{reason="circuit_open"} 1.0' in metrics


async def test_breaker_closes_after_its_quiet_period_without_a_new_alert(
    aiohttp_client, settings, cluster
):
    cluster.add(objects.deployment("api", "prod"))
    breaker = settings.guards.breaker.model_copy(update={"max_targets": 1, "check_interval": 0.02})
    clock = Clock()
    client = await aiohttp_client(create_app(live(settings, cluster, breaker=breaker), clock=clock))
    await post(client, alert())
    await settled(client, {"verified"})
    await post(client, alert(crashloop_labels(deployment="api"), starts_at="2025-05-01T11:00:00Z"))
    newest = (await settled(client, {"verified", "blocked"}, count=2))[0]
    assert kinds(newest)[-1] == "blocked"

    async def closed(detail_id: str) -> dict[str, Any] | None:
        resp = await client.get(f"/api/v1/incidents/{detail_id}", headers=AUTH)
        detail = await resp.json()
        return detail if kinds(detail)[-1] == "circuit_closed" else None

    # The window is calm after 10m, but the breaker stays open for its 15m quiet period.
    clock.advance(timedelta(minutes=14))
    await asyncio.sleep(0.3)  # many looks at 20 ms
    assert await closed(newest["id"]) is None
    assert "remediator_circuit_open 1.0" in await (await client.get("/metrics")).text()
    clock.advance(timedelta(minutes=2))
    detail = await eventually(lambda: closed(newest["id"]))
    assert event(detail, "circuit_closed")["message"] == (
        "circuit breaker closed: open for 16m, and the last 10m is calm"
    )
    assert "remediator_circuit_open 0.0" in await (await client.get("/metrics")).text()
    assert cluster.get("apps/v1", "Deployment", "prod", "api")["metadata"]["generation"] == 1


async def test_a_slow_verify_look_never_holds_up_a_new_alert(aiohttp_client, settings, cluster):
    cluster.add(objects.deployment("api", "prod"))
    cluster.set_stuck("Deployment", "prod", "web")
    client = await aiohttp_client(create_app(live(settings, cluster)))
    await post(client, alert())
    await settled(client, {"executed"})
    # The look is held 4.5 s (within its 5 s request timeout), well beyond the bound below.
    cluster.set_latency(4.5, path_contains="/deployments/web", method="GET")

    async def look_in_flight():
        return any(
            r.method == "GET" and r.path.endswith("/web") and r.response_status is None
            for r in cluster.requests
        )

    await eventually(look_in_flight)
    posted = time.perf_counter()
    await post(client, alert(crashloop_labels(deployment="api"), starts_at="2025-05-01T11:00:00Z"))

    async def patched():
        return next(
            (r for r in cluster.requests if r.is_mutation and r.path.endswith("/api")), None
        )

    patch = await eventually(patched, timeout=10)
    assert patch.at - posted < 3.0  # the look at web still has seconds to go


async def test_renotification_and_a_second_alert_in_cooldown_act_no_more(
    aiohttp_client, settings, cluster
):
    client = await aiohttp_client(create_app(live(settings, cluster)))
    await post(client, alert())
    await settled(client, {"verified"})
    await post(client, alert())  # repeat_interval: the same instance again
    await post(client, alert(starts_at="2025-05-01T11:00:00Z"))  # a new instance, same target
    details = await settled(client, {"verified", "blocked"}, count=2)
    newest = details[0]
    assert newest["events"][-1]["reason"] == "cooldown"
    assert restarts(cluster) == 1


async def test_verification_failure_escalates(aiohttp_client, settings, cluster, runbook_dir):
    # A short window here only: elsewhere a paused loop could end it before a healthy look.
    (runbook_dir / "crashloop.yaml").write_text(RUNBOOK.replace("timeout: 30s", "timeout: 1s"))
    cluster.set_stuck("Deployment", "prod", "web")
    client = await aiohttp_client(create_app(live(settings, cluster)))
    await post(client, alert())
    [detail] = await settled(client, {"executed"})

    async def escalated():
        d = await (await client.get(f"/api/v1/incidents/{detail['id']}", headers=AUTH)).json()
        return d if kinds(d)[-1] == "executed" and "verification_failed" in kinds(d) else None

    done = await eventually(escalated, timeout=15)
    tail = [(e["stage"], e["kind"]) for e in done["events"]][-4:]
    assert tail == [
        ("verify", "verification_failed"),
        ("context", "context"),  # what the target looks like now, for the escalation
        ("escalate", "planned"),
        ("execute", "executed"),
    ]
    assert done["events"][-1]["message"] == (
        "notified about Deployment prod/web: restart did not heal web"
    )
    statuses = sorted((x["step"], x["status"]) for x in done["executions"])
    assert statuses == [(-1, "done"), (0, "verification_failed")]


async def test_resolved_alert_counts_as_healed(aiohttp_client, settings, cluster):
    cluster.set_stuck("Deployment", "prod", "web")
    client = await aiohttp_client(create_app(live(settings, cluster)))
    await post(client, alert())
    await settled(client, {"executed"})
    await post(client, alert(status="resolved", ends_at="2025-05-01T10:05:00Z"))
    [detail] = await settled(client, {"verified"})
    assert event(detail, "verified")["message"].endswith("Alertmanager resolved the alert")


async def test_a_lost_response_is_checked_not_resent(aiohttp_client, settings, cluster):
    cluster.drop_next(1, method="PATCH", apply_then_drop=True)
    client = await aiohttp_client(create_app(live(settings, cluster)))
    await post(client, alert())
    [detail] = await settled(client, {"verified", "failed"})
    assert "its answer was lost" in event(detail, "executed")["message"]
    assert len(cluster.mutations()) == 1
    assert restarts(cluster) == 1


async def test_a_refused_action_is_recorded_and_escalated(
    aiohttp_client, settings, fake_kube, runbook_dir
):
    (runbook_dir / "crashloop.yaml").write_text(RUNBOOK)
    fake_kube.add(objects.deployment("web", "prod", paused=True))
    client = await aiohttp_client(create_app(live(settings, fake_kube)))
    await post(client, alert())
    [detail] = await settled(client, {"failed"})

    async def escalated():
        d = await (await client.get(f"/api/v1/incidents/{detail['id']}", headers=AUTH)).json()
        return d if kinds(d)[-1] == "executed" else None

    done = await eventually(escalated)
    failed = next(e for e in done["events"] if e["kind"] == "failed")
    assert (failed["reason"], "paused" in failed["message"]) == ("action_refused", True)
    assert fake_kube.mutations() == []


async def test_shadow_mode_can_ask_the_api_server(aiohttp_client, settings, cluster):
    shadow = live(settings, cluster, dry_run=True)
    shadow = shadow.model_copy(
        update={"kube": shadow.kube.model_copy(update={"server_dry_run": True})}
    )
    client = await aiohttp_client(create_app(shadow))
    await post(client, alert())
    [detail] = await settled(client, {"dry_run"})
    assert "the API server accepted it (dryRun=All)" in detail["events"][-1]["message"]
    [patch] = cluster.mutations()
    assert patch.query["dryRun"] == "All"
    assert restarts(cluster) == 0


async def test_kind_not_allowed_is_blocked(aiohttp_client, settings, cluster):
    strict = live(
        settings, cluster, kinds=settings.guards.kinds.model_copy(update={"allow": ["StatefulSet"]})
    )
    client = await aiohttp_client(create_app(strict))
    await post(client, alert(crashloop_labels()))
    [detail] = await settled(client, {"blocked"})
    assert detail["events"][-1]["reason"] == "kind_not_allowed"
    assert cluster.mutations() == []
