"""Probes, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import validate as validate_openapi
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from remediator.app import create_app
from remediator.keys import RUNBOOKS
from remediator.web.query import PARAMETERS
from tests.conftest import AUTH, eventually
from tests.payloads import alert, crashloop_labels, notification

NOT_READY = {
    "status": "not ready",
    "problems": ["runbooks not loaded (see the log for the errors)"],
}


async def scrape(client) -> str:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    return await resp.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def metric(client, name: str, **labels: str) -> float | None:
    """The sample's value, or None when the series is not exposed at all."""
    return samples(await scrape(client)).get((name, frozenset(labels.items())))


async def send(client, body, expect=200):
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status == expect, await resp.text()
    return await resp.json()


async def only_incident(client):
    resp = await client.get("/api/v1/incidents", headers=AUTH)
    [item] = (await resp.json())["items"]
    return item["id"]


async def events_of(client, incident_id):
    resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
    assert resp.status == 200
    return [e["kind"] for e in (await resp.json())["events"]]


def reaches(client, name: str, value: float, **labels: str):
    async def probe():
        return await metric(client, name, **labels) == value

    return probe


# --- probes -----------------------------------------------------------------------------


async def test_healthz_and_readyz_when_ready(client):
    resp = await client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready"})


@pytest.fixture
def broken_settings(settings):
    (settings.runbooks.dir / "broken.yaml").write_text("name: [unclosed\nsteps: {\n")
    return settings


async def test_invalid_runbooks_at_start_not_ready_but_webhook_accepts(
    aiohttp_client, broken_settings
):
    app = create_app(broken_settings)
    client = await aiohttp_client(app)
    assert not app[RUNBOOKS].loaded

    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (503, NOT_READY)
    resp = await client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    assert await metric(client, "remediator_runbooks_loaded") == 0.0
    assert await metric(client, "remediator_runbook_reload_failures_total") == 1.0

    # Alertmanager is not turned away: the alert is stored and its work queued.
    assert await send(client, notification()) == {
        "status": "ok",
        "received": 1,
        "renotified": 0,
        "resolved": 0,
    }
    incident_id = await only_incident(client)
    # Many worker polls (0.05 s) later, nothing was matched against an empty set.
    await asyncio.sleep(0.5)
    assert await events_of(client, incident_id) == ["received"]
    assert await metric(client, "remediator_alerts_unmatched_total") == 0.0

    # Fix the directory and reload: the queued job is processed.
    (broken_settings.runbooks.dir / "broken.yaml").unlink()
    assert await app[RUNBOOKS].load() is True
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready"})
    assert await metric(client, "remediator_runbooks_loaded") == 2.0

    async def processed():
        kinds = await events_of(client, incident_id)
        return kinds if kinds[-1] == "dry_run" else None

    assert await eventually(processed) == ["received", "matched", "planned", "dry_run"]
    assert await metric(client, "remediator_runbook_reload_failures_total") == 1.0


async def test_pathological_runbook_at_start_is_not_ready_not_a_crash(settings):
    (settings.runbooks.dir / "big.yaml").write_text("name: big\nversion: " + "9" * 5000 + "\n")
    # A YAML file the parser answers with ValueError (an integer over Python's 4300-digit
    # limit) once escaped the loader and crashed start-up. Not the aiohttp_client fixture:
    # if start-up fails it leaks the session and the store, and their ResourceWarnings
    # would surface in whichever test runs next.
    client = TestClient(TestServer(create_app(settings)))
    try:
        await client.start_server()
        resp = await client.get("/readyz")
        assert (resp.status, await resp.json()) == (503, NOT_READY)
    finally:
        await client.close()


async def test_queue_depth_counts_work_held_while_runbooks_are_invalid(
    aiohttp_client, broken_settings
):
    # The gauge was once refreshed only after a claim, and nothing is claimed while the
    # runbooks are invalid: it read 0 while alerts piled up. It may lag by its refresh
    # interval (about a second), never by the whole outage.
    app = create_app(broken_settings)
    client = await aiohttp_client(app)
    await send(client, notification())
    await send(client, notification(alert(crashloop_labels(pod="web-other"))))
    await eventually(reaches(client, "remediator_work_queue_depth", 2.0), timeout=5.0)
    (broken_settings.runbooks.dir / "broken.yaml").unlink()
    assert await app[RUNBOOKS].load() is True
    await eventually(reaches(client, "remediator_work_queue_depth", 0.0), timeout=5.0)


# --- metrics ----------------------------------------------------------------------------


async def test_new_and_resent_alerts_are_counted(client):
    await send(client, notification())
    assert await metric(client, "remediator_alerts_received_total", status="firing") == 1.0
    assert await metric(client, "remediator_renotifications_total") == 0.0
    assert 'remediator_alerts_received_total{status="firing"} 1.0' in (await scrape(client))

    await send(client, notification())
    text = await scrape(client)
    assert "remediator_renotifications_total 1.0" in text.splitlines()
    assert 'remediator_alerts_received_total{status="firing"} 1.0' in text.splitlines()
    assert await metric(client, "remediator_webhook_requests_total", code="200") == 2.0
    assert await metric(client, "remediator_alerts_received_total", status="resolved") is None


async def test_new_resolved_alert_counts_as_resolved(client):
    await send(client, notification(alert(status="resolved")))
    assert await metric(client, "remediator_alerts_received_total", status="resolved") == 1.0
    assert await metric(client, "remediator_alerts_received_total", status="firing") is None


async def test_alerts_received_is_labelled_per_alert(client):
    # Each new alert under its own status, not the notification's (a firing group can carry
    # a resolved alert seen for the first time).
    resolved = alert(crashloop_labels(pod="web-other"), status="resolved")
    assert (await send(client, notification(alert(), resolved)))["received"] == 2
    assert await metric(client, "remediator_alerts_received_total", status="firing") == 1.0
    assert await metric(client, "remediator_alerts_received_total", status="resolved") == 1.0


async def test_bad_payload_is_counted_by_code(client):
    resp = await client.post(
        "/api/v1/alerts", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert await metric(client, "remediator_webhook_requests_total", code="400") == 1.0
    assert await metric(client, "remediator_webhook_requests_total", code="200") is None
    assert 'remediator_webhook_requests_total{code="400"} 1.0' in (await scrape(client))
    # A request refused by auth never reaches the webhook handler.
    resp = await client.post("/api/v1/alerts", json=notification())
    assert resp.status == 401
    assert await metric(client, "remediator_webhook_requests_total", code="401") is None


async def test_pipeline_outcomes_are_counted(client):
    await send(client, notification(alert(crashloop_labels(namespace="payments"))))
    await eventually(
        reaches(client, "remediator_guard_blocks_total", 1.0, reason="namespace_not_allowed")
    )
    await send(client, notification())
    await eventually(
        reaches(client, "remediator_actions_total", 1.0, action="restart", result="dry_run")
    )
    text = await scrape(client)
    lines = text.splitlines()
    assert 'remediator_guard_blocks_total{reason="namespace_not_allowed"} 1.0' in lines
    assert 'remediator_actions_total{action="restart",result="dry_run"} 1.0' in lines
    assert 'remediator_runbook_matches_total{runbook="crashloop"} 2.0' in lines
    assert "remediator_alerts_unmatched_total 0.0" in lines
    assert "remediator_runbooks_loaded 2.0" in lines
    assert "remediator_runbook_reload_failures_total 0.0" in lines
    # Both jobs are finished, so nothing is waiting.
    await eventually(reaches(client, "remediator_work_queue_depth", 0.0))


async def test_request_latency_by_route_template(client):
    for _ in range(3):
        await send(client, notification())
    await client.get("/api/v1/incidents/some-id-123", headers=AUTH)
    await client.get("/no/such/path")
    found = samples(await scrape(client))
    post = {"route": "/api/v1/alerts", "method": "POST"}
    name = "remediator_http_request_duration_seconds"
    assert found[(f"{name}_count", frozenset(post.items()))] == 3.0
    assert found[(f"{name}_bucket", frozenset({**post, "le": "+Inf"}.items()))] == 3.0
    detail = frozenset({"route": "/api/v1/incidents/{incident_id}", "method": "GET"}.items())
    assert found[(f"{name}_count", detail)] == 1.0
    unmatched = frozenset({"route": "unmatched", "method": "GET"}.items())
    assert found[(f"{name}_count", unmatched)] == 1.0
    # Raw paths never become label values.
    routes = {dict(labels).get("route") for (_, labels) in found}
    assert not any(r and ("some-id-123" in r or "no/such" in r) for r in routes)


async def test_every_documented_metric_is_exposed(client):
    families = {f.name for f in text_string_to_metric_families(await scrape(client))}
    assert {
        "remediator_alerts_received",
        "remediator_renotifications",
        "remediator_webhook_requests",
        "remediator_runbook_matches",
        "remediator_alerts_unmatched",
        "remediator_guard_blocks",
        "remediator_actions",
        "remediator_work_queue_depth",
        "remediator_runbooks_loaded",
        "remediator_runbook_reload_failures",
        "remediator_job_failures",
        "remediator_http_request_duration_seconds",
    } <= families


async def test_metrics_and_probes_need_no_auth_but_api_does(client):
    for path in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
        assert (await client.get(path)).status == 200, path
    assert (await client.get("/api/v1/incidents")).status == 401


# --- OpenAPI ----------------------------------------------------------------------------


async def openapi(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


def schema_validator(doc, component: str) -> Draft202012Validator:
    """Validate against one component; its ``#/components/...`` refs resolve within ``doc``."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def test_openapi_document_is_valid(client):
    doc = await openapi(client)
    validate_openapi(doc)
    assert doc["openapi"].startswith("3.1")
    served = {
        route.resource.canonical
        for route in client.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/api/v1/")
    }
    assert set(doc["paths"]) == served  # every JSON API route is documented, no more
    assert "/api/v1/approvals/{approval_id}/{decision}" in served
    assert set(doc["paths"]["/api/v1/alerts"]) == {"post"}
    assert set(doc["paths"]["/api/v1/incidents"]) == {"get"}
    params = {p["name"] for p in doc["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert params == PARAMETERS  # every parameter the handler reads is documented


async def test_responses_validate_against_the_document(client):
    doc = await openapi(client)
    await send(client, notification())
    incident_id = await only_incident(client)

    async def finished():
        resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
        body = await resp.json()
        return body if body["executions"] and body["events"][-1]["kind"] == "dry_run" else None

    detail = await eventually(finished)
    detail_schema = schema_validator(doc, "IncidentDetail")
    detail_schema.validate(detail)

    page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
    schema_validator(doc, "IncidentPage").validate(page)
    for resp in (
        await client.get("/api/v1/incidents/nope", headers=AUTH),
        await client.get("/api/v1/incidents?limit=0", headers=AUTH),
        await client.get("/api/v1/incidents"),
    ):
        schema_validator(doc, "ErrorBody").validate(await resp.json())

    # The schema has teeth: a response missing its timeline, or with a mistyped field, fails.
    without_events = {k: v for k, v in detail.items() if k != "events"}
    with pytest.raises(ValidationError, match="'events' is a required property"):
        detail_schema.validate(without_events)
    with pytest.raises(ValidationError):
        detail_schema.validate({**detail, "notifications": "1"})
    with pytest.raises(ValidationError):
        detail_schema.validate({**detail, "starts_at": "yesterday"})
    bad_event = {**detail["events"][0], "id": "one"}
    with pytest.raises(ValidationError):
        detail_schema.validate({**detail, "events": [bad_event]})
