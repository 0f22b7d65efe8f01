"""End to end: a real Alertmanager posts webhooks to a real ``remediator serve`` process.

Each test starts its own server (``remediator_server``) and Alertmanager(s)
(``alertmanager_factory``), fires alerts through Alertmanager's API and reads the result
back only through the server's public HTTP API, exactly as an operator would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import eventually

from .alertmanager import GENERATOR_URL, AlertmanagerFactory, AlertmanagerProcess
from .conftest import E2E_TOKEN, RemediatorServer

Detail = dict[str, Any]

SUMMARY = "web-1 is crash looping"


def crashloop_labels(**overrides: str) -> dict[str, str]:
    labels = {
        "alertname": "KubePodCrashLooping",
        "namespace": "prod",
        "deployment": "web",
        "severity": "critical",
        "pod": "web-1",
    }
    labels.update(overrides)
    return labels


def kinds(detail: Detail) -> list[str]:
    return [e["kind"] for e in detail["events"]]


def events_of(detail: Detail, kind: str) -> list[dict[str, Any]]:
    return [e for e in detail["events"] if e["kind"] == kind]


def _describe(details: Iterable[Detail]) -> str:
    return "\n".join(
        f"  {d['id']} status={d['status']} notifications={d['notifications']} "
        f"events={kinds(d)} executions={len(d['executions'])}"
        for d in details
    )


async def wait_for_incident(
    server: RemediatorServer,
    until: Callable[[Detail], bool],
    what: str,
    *,
    alertmanagers: Iterable[AlertmanagerProcess] = (),
    within: float = 10.0,
) -> Detail:
    """Poll the API until some incident's detail satisfies ``until``; return that detail.

    On timeout, fail with every incident's timeline and the server and Alertmanager logs.
    """
    seen: list[Detail] = []

    async def probe() -> Detail | None:
        items = await server.incidents()
        seen[:] = [await server.incident(item["id"]) for item in items]
        return next((d for d in seen if until(d)), None)

    try:
        found: Detail = await eventually(probe, timeout=within, interval=0.1)
    except AssertionError:
        am_logs = "".join(
            f"\n--- alertmanager {am.url} log ---\n{am.read_log()}" for am in alertmanagers
        )
        pytest.fail(
            f"{what}: not seen within {within} s; incidents:\n{_describe(seen) or '  (none)'}"
            f"\n--- server log ---\n{server.log_text()}{am_logs}"
        )
    return found


async def am_alerts(am: AlertmanagerProcess) -> list[dict[str, Any]]:
    """Alertmanager's own view of its alerts (``GET /api/v2/alerts``)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{am.url}/api/v2/alerts") as resp,
    ):
        assert resp.status == 200, f"GET {am.url}/api/v2/alerts -> {resp.status}"
        alerts: list[dict[str, Any]] = await resp.json()
    return alerts


async def am_fingerprint(am: AlertmanagerProcess, labels: dict[str, str]) -> str:
    matching = [a for a in await am_alerts(am) if a["labels"] == labels]
    assert len(matching) == 1, f"Alertmanager {am.url} holds {matching!r}"
    fingerprint: str = matching[0]["fingerprint"]
    return fingerprint


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of sample ``name`` with exactly ``labels``, or None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return float(sample.value)
    return None


def start_am(
    factory: AlertmanagerFactory, server: RemediatorServer, **options: Any
) -> AlertmanagerProcess:
    return factory(receiver_url=server.webhook_url, bearer_token=E2E_TOKEN, **options)


def dry_run_done(detail: Detail) -> bool:
    return "dry_run" in kinds(detail)


# --- 1. firing ----------------------------------------------------------------------------


async def test_fired_alert_becomes_one_incident_with_a_dry_run(
    remediator_server: RemediatorServer, alertmanager_factory: AlertmanagerFactory
) -> None:
    server = remediator_server
    am = start_am(alertmanager_factory, server)
    labels = crashloop_labels()

    await am.fire(labels, annotations={"summary": SUMMARY})
    detail = await wait_for_incident(server, dry_run_done, "dry_run event", alertmanagers=[am])

    items = await server.incidents()
    assert [i["id"] for i in items] == [detail["id"]], _describe([detail])
    assert detail["status"] == "open"
    assert detail["resolved_at"] is None
    assert (detail["alertname"], detail["namespace"], detail["severity"]) == (
        "KubePodCrashLooping",
        "prod",
        "critical",
    )
    assert detail["summary"] == SUMMARY
    assert detail["labels"] == labels
    assert detail["annotations"] == {"summary": SUMMARY}
    assert detail["generator_url"] == GENERATOR_URL
    assert detail["external_url"] == am.url
    assert detail["notifications"] == 1
    assert detail["fingerprint"] == await am_fingerprint(am, labels)

    assert kinds(detail) == ["received", "matched", "planned", "dry_run"], detail["events"]
    assert [e["stage"] for e in detail["events"]] == ["ingest", "match", "plan", "execute"]
    matched = events_of(detail, "matched")[0]
    assert matched["runbook"] == "crashloop"
    assert str(matched["data"]["version"]) == "2", matched
    dry_run = events_of(detail, "dry_run")[0]
    assert dry_run["runbook"] == "crashloop"
    assert dry_run["message"].startswith("would restart Deployment prod/web"), dry_run

    assert len(detail["executions"]) == 1, detail["executions"]
    execution = detail["executions"][0]
    assert execution["runbook"] == "crashloop"
    assert execution["action"] == "restart"
    assert execution["dry_run"] is True
    assert execution["status"] == "dry_run"

    metrics = await server.metrics_text()
    assert metric_value(metrics, "remediator_alerts_received_total", {"status": "firing"}) == 1


# --- 2. resolve ---------------------------------------------------------------------------


async def test_resolving_in_alertmanager_resolves_the_incident(
    remediator_server: RemediatorServer, alertmanager_factory: AlertmanagerFactory
) -> None:
    server = remediator_server
    am = start_am(alertmanager_factory, server)
    labels = crashloop_labels()
    started = datetime.now(UTC)

    await am.fire(labels, annotations={"summary": SUMMARY}, starts_at=started)
    fired = await wait_for_incident(server, dry_run_done, "dry_run event", alertmanagers=[am])
    assert fired["status"] == "open"

    await am.resolve(labels, starts_at=started)
    detail = await wait_for_incident(
        server, lambda d: d["status"] == "resolved", "resolved incident", alertmanagers=[am]
    )

    assert detail["id"] == fired["id"]
    assert [i["id"] for i in await server.incidents()] == [detail["id"]]
    assert [i["id"] for i in await server.incidents(status="resolved")] == [detail["id"]]
    assert await server.incidents(status="open") == []
    assert detail["resolved_at"] is not None
    assert kinds(detail) == ["received", "matched", "planned", "dry_run", "resolved"], detail[
        "events"
    ]
    assert events_of(detail, "resolved")[0]["stage"] == "ingest"
    assert len(detail["executions"]) == 1, detail["executions"]


# --- 3. re-notification -------------------------------------------------------------------


async def test_repeated_notifications_run_nothing_again(
    remediator_server: RemediatorServer, alertmanager_factory: AlertmanagerFactory
) -> None:
    server = remediator_server
    am = start_am(alertmanager_factory, server, group_interval="1s", repeat_interval="2s")
    labels = crashloop_labels()

    await am.fire(labels, annotations={"summary": SUMMARY})
    detail = await wait_for_incident(
        server,
        lambda d: d["notifications"] >= 3 and dry_run_done(d),
        "3 deliveries of the alert",
        alertmanagers=[am],
        within=15,
    )

    assert len(await server.incidents()) == 1
    renotified = events_of(detail, "renotified")
    assert len(renotified) >= 2, detail["events"]
    assert all(e["stage"] == "ingest" for e in renotified), renotified
    assert all(e["data"].get("status") == "firing" for e in renotified), renotified
    for kind in ("received", "matched", "planned", "dry_run"):
        assert len(events_of(detail, kind)) == 1, (kind, detail["events"])
    assert len(detail["executions"]) == 1, detail["executions"]
    assert detail["status"] == "open"

    metrics = await server.metrics_text()
    assert metric_value(metrics, "remediator_alerts_received_total", {"status": "firing"}) == 1
    renotifications = metric_value(metrics, "remediator_renotifications_total")
    assert renotifications is not None
    assert renotifications >= 2


# --- 4. HA pair ---------------------------------------------------------------------------


async def test_ha_pair_delivering_the_same_alert_makes_one_incident(
    remediator_server: RemediatorServer, alertmanager_factory: AlertmanagerFactory
) -> None:
    server = remediator_server
    first = start_am(alertmanager_factory, server)
    second = start_am(alertmanager_factory, server)
    labels = crashloop_labels()
    started = datetime.now(UTC)

    await asyncio.gather(
        first.fire(labels, annotations={"summary": SUMMARY}, starts_at=started),
        second.fire(labels, annotations={"summary": SUMMARY}, starts_at=started),
    )
    detail = await wait_for_incident(
        server,
        lambda d: d["notifications"] >= 2 and dry_run_done(d),
        "deliveries from both Alertmanagers",
        alertmanagers=[first, second],
    )

    items = await server.incidents()
    assert len(items) == 1, _describe([await server.incident(i["id"]) for i in items])
    fingerprints = {await am_fingerprint(first, labels), await am_fingerprint(second, labels)}
    assert fingerprints == {detail["fingerprint"]}
    assert detail["external_url"] in {first.url, second.url}
    assert len(events_of(detail, "received")) == 1, detail["events"]
    assert len(events_of(detail, "renotified")) >= 1, detail["events"]
    assert len(events_of(detail, "dry_run")) == 1, detail["events"]
    assert len(detail["executions"]) == 1, detail["executions"]


# --- 5. wrong credentials -----------------------------------------------------------------


async def test_alertmanager_with_wrong_token_is_refused(
    remediator_server: RemediatorServer, alertmanager_factory: AlertmanagerFactory
) -> None:
    server = remediator_server
    am = alertmanager_factory(receiver_url=server.webhook_url, bearer_token="wrong-token")

    await am.fire(crashloop_labels(), annotations={"summary": SUMMARY})

    async def refused() -> bool:
        return "status code 401" in am.read_log()

    try:
        await eventually(refused, timeout=10, interval=0.1)
    except AssertionError:
        pytest.fail(
            f"Alertmanager never logged a 401 from the server\n--- alertmanager log ---\n"
            f"{am.read_log()}\n--- server log ---\n{server.log_text()}"
        )
    await asyncio.sleep(2)  # any (wrongly) accepted delivery would be stored by now

    assert await server.incidents() == [], server.log_text()
    metrics = await server.metrics_text()
    assert not metric_value(metrics, "remediator_alerts_received_total", {"status": "firing"})


# --- 6. guard -----------------------------------------------------------------------------


async def test_namespace_outside_the_allow_list_is_blocked(
    remediator_server: RemediatorServer, alertmanager_factory: AlertmanagerFactory
) -> None:
    server = remediator_server
    am = start_am(alertmanager_factory, server)
    labels = crashloop_labels(namespace="payments", deployment="checkout", pod="checkout-1")

    await am.fire(labels, annotations={"summary": "checkout-1 is crash looping"})
    detail = await wait_for_incident(
        server, lambda d: "blocked" in kinds(d), "blocked event", alertmanagers=[am]
    )

    assert len(await server.incidents()) == 1
    assert detail["namespace"] == "payments"
    assert detail["fingerprint"] == await am_fingerprint(am, labels)
    assert kinds(detail) == ["received", "matched", "planned", "blocked"], detail["events"]
    blocked = events_of(detail, "blocked")[0]
    assert blocked["reason"] == "namespace_not_allowed", blocked
    assert blocked["runbook"] == "crashloop"
    assert detail["executions"] == []
    assert detail["status"] == "open"
