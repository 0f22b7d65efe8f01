"""POST /api/v1/alerts: every status code the webhook can answer, and what it stores."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from remediator.app import create_app
from remediator.errors import ConfigError
from remediator.settings import AuthSettings, Settings
from tests.conftest import AUTH, TOKEN, eventually
from tests.payloads import alert, crashloop_labels, notification


def with_auth(settings, **auth):
    return settings.model_copy(update={"auth": AuthSettings(**auth)})


async def incidents(client, **query):
    resp = await client.get("/api/v1/incidents", params=query, headers=AUTH)
    assert resp.status == 200
    return (await resp.json())["items"]


async def detail(client, incident_id):
    resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
    assert resp.status == 200
    return await resp.json()


async def test_firing_alert_is_stored_and_acknowledged(client):
    resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "received": 1, "renotified": 0, "resolved": 0}
    [item] = await incidents(client)
    assert item["status"] == "open"
    assert item["alertname"] == "KubePodCrashLooping"
    assert item["namespace"] == "prod"
    assert item["notifications"] == 1
    # Nanoseconds from Alertmanager are kept to the microsecond.
    assert item["starts_at"] == "2025-05-01T10:00:00.123456Z"


async def test_tolerates_fields_from_newer_alertmanagers(client):
    body = notification(notification_reason="first notification", routeLabels={"team": "a"})
    body["alerts"][0]["someFutureField"] = {"x": 1}
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status == 200


async def test_resent_alert_is_a_renotification_not_new_work(client):
    for _ in range(3):
        resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
        assert resp.status == 200
    assert (await resp.json())["renotified"] == 1
    [item] = await incidents(client)
    assert item["notifications"] == 3
    full = await eventually(lambda: _with_kind(client, item["id"], "dry_run"))
    kinds = [e["kind"] for e in full["events"]]
    assert kinds.count("renotified") == 2
    assert kinds.count("dry_run") == 1
    assert len(full["executions"]) == 1


async def _with_kind(client, incident_id, kind):
    full = await detail(client, incident_id)
    return full if any(e["kind"] == kind for e in full["events"]) else None


async def test_resolved_closes_the_incident(client):
    await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    resolved = notification(alert(status="resolved"))
    resp = await client.post("/api/v1/alerts", json=resolved, headers=AUTH)
    assert (await resp.json())["resolved"] == 1
    [item] = await incidents(client)
    assert item["status"] == "resolved"
    assert item["resolved_at"] is not None
    assert await incidents(client, status="open") == []


async def test_late_firing_copy_after_resolution_does_not_reopen(client):
    await client.post("/api/v1/alerts", json=notification(alert(status="resolved")), headers=AUTH)
    resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    assert await resp.json() == {"status": "ok", "received": 0, "renotified": 1, "resolved": 0}
    [item] = await incidents(client)
    assert item["status"] == "resolved"
    full = await detail(client, item["id"])
    assert full["executions"] == []


async def test_new_startsat_is_a_new_instance(client):
    await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    again = notification(alert(starts_at="2025-05-01T11:00:00Z"))
    resp = await client.post("/api/v1/alerts", json=again, headers=AUTH)
    assert (await resp.json())["received"] == 1
    assert len(await incidents(client)) == 2


async def test_one_request_with_the_same_alert_twice(client):
    body = notification(alert(), alert())
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert await resp.json() == {"status": "ok", "received": 1, "renotified": 1, "resolved": 0}


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"{not json", None, "malformed JSON"),
        (b"", None, "malformed JSON"),
        (b"[]", None, "body"),
        (json.dumps({**notification(), "version": "3"}).encode(), "version", "version"),
        (
            json.dumps(notification({**alert(), "fingerprint": ""})).encode(),
            "alerts.0.fingerprint",
            "fingerprint",
        ),
        (
            json.dumps(notification(alert(starts_at="yesterday"))).encode(),
            "alerts.0.startsAt",
            "startsAt",
        ),
        (
            json.dumps(notification(alert(starts_at="2025-05-01T10:00:00"))).encode(),
            "alerts.0.startsAt",
            "timezone",
        ),
        # Valid RFC 3339, but past year 1 or 9999 once converted to UTC.
        (
            json.dumps(notification(alert(starts_at="0001-01-01T00:00:00+01:00"))).encode(),
            "alerts.0.startsAt",
            "alerts.0.startsAt: Value error, is out of range",
        ),
        (
            json.dumps(notification(alert(ends_at="9999-12-31T23:30:00-01:00"))).encode(),
            "alerts.0.endsAt",
            "alerts.0.endsAt: Value error, is out of range",
        ),
        (
            json.dumps(notification(alert(crashloop_labels(pod="a\x00b")))).encode(),
            "alerts.0.labels",
            "'pod' must not contain the NUL",
        ),
        (b"\xff\xfe garbage", None, "malformed JSON"),
    ],
)
async def test_bad_payloads_get_400_naming_the_field(client, body, field, fragment):
    resp = await client.post(
        "/api/v1/alerts", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    answer = await resp.json()
    assert fragment in answer["error"]
    assert answer.get("field") == field
    assert await incidents(client) == []


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", f"Token {TOKEN}", "Bearer", f"bearer {TOKEN}x", "Basic !!!"],
)
async def test_wrong_credentials_get_401_and_store_nothing(client, header):
    headers = {"Authorization": header} if header else {}
    resp = await client.post("/api/v1/alerts", json=notification(), headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await incidents(client) == []


async def test_read_api_needs_credentials_too(client):
    assert (await client.get("/api/v1/incidents")).status == 401
    assert (await client.get("/healthz")).status == 200


async def test_basic_auth(aiohttp_client, settings):
    s = with_auth(settings, username="am", password="pw")
    client = await aiohttp_client(create_app(s))
    good = "Basic " + base64.b64encode(b"am:pw").decode()
    bad = "Basic " + base64.b64encode(b"am:nope").decode()
    resp = await client.post("/api/v1/alerts", json=notification(), headers={"Authorization": bad})
    assert resp.status == 401
    resp = await client.post("/api/v1/alerts", json=notification(), headers={"Authorization": good})
    assert resp.status == 200


async def test_token_from_file(aiohttp_client, settings, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    s = with_auth(settings, bearer_token_file=secret)
    client = await aiohttp_client(create_app(s))
    resp = await client.post(
        "/api/v1/alerts", json=notification(), headers={"Authorization": "Bearer from-file"}
    )
    assert resp.status == 200


async def test_body_over_the_limit_gets_413(aiohttp_client, settings):
    s = settings.model_copy(
        update={"server": settings.server.model_copy(update={"max_body_bytes": 4096})}
    )
    client = await aiohttp_client(create_app(s))
    big = notification(alert(annotations={"description": "x" * 5000}))
    resp = await client.post("/api/v1/alerts", json=big, headers=AUTH)
    assert resp.status == 413
    assert "4096" in (await resp.json())["error"]
    small = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    assert small.status == 200


async def outsider(url: str, statement: str) -> None:
    """Run ``statement`` on the store from outside the server."""
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
        return
    path = Path(url.split(":///", 1)[1])

    def run() -> None:
        with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
            db.execute(statement)

    # Its own thread: blocking the event loop on SQLite's lock would deadlock against
    # the server's own in-flight transaction.
    await asyncio.to_thread(run)


async def test_store_that_cannot_write_gets_503_and_loses_nothing(client, settings):
    # Another process breaks the schema under the server: every write fails.
    await outsider(settings.store.url, "ALTER TABLE alerts RENAME TO alerts_away")
    try:
        resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
        assert resp.status == 503
        assert "retry" in (await resp.json())["error"]
    finally:
        await outsider(settings.store.url, "ALTER TABLE alerts_away RENAME TO alerts")
    assert (await client.get("/api/v1/incidents", headers=AUTH)).status == 200
    assert await incidents(client) == []
    # Alertmanager retries a 503; the retry is stored as a first delivery.
    resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["received"] == 1


def test_refuses_to_start_without_credentials(settings):
    s = with_auth(settings)
    with pytest.raises(ConfigError, match="refusing to start: no webhook credentials"):
        create_app(s)


async def test_insecure_mode_is_explicit_and_loud(aiohttp_client, settings):
    s = with_auth(settings, insecure_no_auth=True)
    with capture_logs() as logs:
        client = await aiohttp_client(create_app(s))
    assert any(
        entry["event"] == "insecure_no_auth" and entry["log_level"] == "warning" for entry in logs
    )
    resp = await client.post("/api/v1/alerts", json=notification())
    assert resp.status == 200


async def test_credentials_never_reach_the_logs(client):
    with capture_logs() as logs:
        await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
        await client.post(
            "/api/v1/alerts", json=notification(), headers={"Authorization": "Bearer guess"}
        )
        await eventually(lambda: _any_dry_run(client))
    text = json.dumps(logs, default=str)
    assert logs
    assert TOKEN not in text
    assert "guess" not in text


async def _any_dry_run(client):
    [item] = await incidents(client)
    return await _with_kind(client, item["id"], "dry_run")


def test_settings_error_names_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  port: 99999\nguards:\n  dryrun: true\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(cfg)
    message = str(info.value)
    assert str(cfg) in message
    assert "server.port" in message
    assert "guards.dryrun" in message


async def test_compressed_body_that_inflates_past_the_limit_gets_413(client):
    bomb = gzip.compress(b'{"version": "4", "pad": "' + b"0" * 20_000_000 + b'"}')
    assert len(bomb) < 1024 * 1024
    resp = await client.post(
        "/api/v1/alerts",
        data=bomb,
        headers={**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert await incidents(client) == []


async def test_a_body_that_does_not_decode_gets_400_naming_the_encoding(client):
    resp = await client.post(
        "/api/v1/alerts",
        data=b"not gzip at all",
        headers={**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert "could not be decoded" in (await resp.json())["error"]
    assert resp.headers["Connection"] == "close"
    assert await incidents(client) == []


async def test_a_broken_body_on_a_route_that_reads_none_is_still_400(client):
    resp = await client.post(
        "/api/v1/approvals/" + "a" * 21 + "/approve",
        data=b"not gzip",
        headers={**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert resp.status == 400


def test_an_unsupported_store_is_refused_by_name():
    with pytest.raises(ConfigError) as info:
        Settings.load(None, **{"store.url": "mysql+aiomysql://db/remediator"})
    assert "store.url" in str(info.value)
    assert "postgresql+asyncpg://" in str(info.value)
