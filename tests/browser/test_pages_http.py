"""The incident pages over plain HTTP (no browser): sign-in, 400 naming the field, 404,
escaping in the HTML itself, the security headers and the time range."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from remediator.app import create_app
from remediator.errors import ConfigError
from remediator.settings import Settings
from remediator.web.pages import href
from tests.conftest import AUTH, ClientFactory, eventually
from tests.payloads import alert, crashloop_labels, notification

from .conftest import CREDENTIALS, IMG, JS_URL, SCRIPT, with_basic_auth


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


BASIC = basic(CREDENTIALS["username"], CREDENTIALS["password"])


@pytest.fixture
async def pages(aiohttp_client: ClientFactory, settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(with_basic_auth(settings)))


async def seed(client: TestClient[Any, Any]) -> dict[str, Any]:
    """One dry-run incident with hostile labels; its JSON detail once the worker is done."""
    labels = crashloop_labels(note=SCRIPT)
    body = notification(alert(labels, annotations={"summary": IMG}), externalURL=JS_URL)
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status == 200

    async def done() -> dict[str, Any] | None:
        page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
        if not page["items"]:
            return None
        resp = await client.get(f"/api/v1/incidents/{page['items'][0]['id']}", headers=AUTH)
        detail: dict[str, Any] = await resp.json()
        return detail if detail["events"][-1]["kind"] == "dry_run" else None

    found: dict[str, Any] = await eventually(done)
    return found


async def html(client: TestClient[Any, Any], path: str, status: int = 200, **kw: Any) -> str:
    resp = await client.get(path, headers=BASIC, **kw)
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "text/html"
    return text


async def test_pages_need_credentials(pages):
    incident = await seed(pages)
    for path in ("/incidents", f"/incidents/{incident['id']}", "/incidents/nope"):
        resp = await pages.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="remediator"'
        assert resp.content_type == "text/html"
        body = await resp.text()
        assert incident["id"] not in body
        assert "KubePodCrashLooping" not in body
        wrong = await pages.get(path, headers=basic("oncall", "wrong"))
        assert wrong.status == 401
    # The API keeps its bearer challenge; basic and bearer both open the pages.
    api = await pages.get("/api/v1/incidents")
    assert api.headers["WWW-Authenticate"] == 'Bearer realm="remediator"'
    assert (await pages.get("/incidents", headers=AUTH)).status == 200
    assert (await pages.get("/incidents", headers=BASIC)).status == 200
    assert (await pages.get("/healthz")).status == 200  # probes stay open


BAD = [
    ({"status": "firing"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "²"}, "limit"),
    ({"cursor": "../../etc"}, "cursor"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2025-13-01"}, "since"),
    ({"until": "2025-05-01T25:00"}, "until"),
    ({"until": "9999-12-31"}, "until"),  # the day after does not exist
    ({"since": "2025-05-02", "until": "2025-05-01"}, "until"),
    ({"since": "2025-05-01T10:00Z", "until": "2025-05-01T10:00Z"}, "until"),
    ({"severity": "critical"}, "severity"),
]


@pytest.mark.parametrize(("query", "field"), BAD)
async def test_a_bad_filter_is_a_400_page_naming_the_field(pages, query, field):
    body = await html(pages, "/incidents", 400, params=query)
    assert f'<code class="error-field">{field}</code>' in body


async def test_a_repeated_filter_is_a_400(pages):
    body = await html(pages, "/incidents?status=open&status=resolved", 400)
    assert '<code class="error-field">status</code>' in body


@pytest.mark.parametrize("incident_id", ["000000000000000000000", "not-an-id", "%3Cscript%3E"])
async def test_an_unknown_incident_is_a_404_page(pages, incident_id):
    body = await html(pages, f"/incidents/{incident_id}", 404)
    assert "Not found" in body
    assert "<script>" not in body


async def test_hostile_values_are_escaped_in_the_html(pages):
    incident = await seed(pages)
    for path in ("/incidents", f"/incidents/{incident['id']}"):
        body = await html(pages, path)
        assert "<script>" not in body
        assert "<img" not in body
        assert 'href="javascript:' not in body
    detail = await html(pages, f"/incidents/{incident['id']}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&lt;img src=&#34;x&#34; onerror=&#34;alert(2)&#34;&gt;" in detail
    assert '<span class="mono">javascript:alert(3)</span>' in detail


async def test_pages_forbid_scripts_and_allow_exactly_their_stylesheet(pages):
    resp = await pages.get("/incidents", headers=BASIC)
    body = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # so default-src 'none' applies to scripts
    [style] = re.findall(r"<style>(.*?)</style>", body, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"
    for status, path in ((400, "/incidents?limit=x"), (404, "/incidents/nope")):
        resp = await pages.get(path, headers=BASIC)
        assert resp.status == status
        assert resp.headers["Content-Security-Policy"] == csp


async def test_time_range_bounds_when_the_incident_was_opened(pages):
    incident = await seed(pages)
    opened = datetime.fromisoformat(incident["created_at"])
    day = opened.date()
    cases = [
        ({"since": day.isoformat()}, True),
        ({"until": day.isoformat()}, True),  # a date for until includes that day
        ({"since": (day + timedelta(days=1)).isoformat()}, False),
        ({"until": (day - timedelta(days=1)).isoformat()}, False),
        ({"since": opened.isoformat()}, True),  # since is inclusive
        ({"until": opened.isoformat()}, False),  # until is exclusive
        ({"until": (opened + timedelta(microseconds=1)).isoformat()}, True),
        # A time without a zone is UTC; one with a zone means that instant.
        ({"since": opened.replace(tzinfo=None).isoformat()}, True),
        ({"since": (opened + timedelta(seconds=1)).replace(tzinfo=None).isoformat()}, False),
        ({"since": (opened + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")}, True),
    ]
    for query, shown in cases:
        body = await html(pages, "/incidents", params=query)
        assert (f'data-id="{incident["id"]}"' in body) is shown, query
        for name, value in query.items():  # the form shows the range in force
            assert f'name="{name}" value="{value}"' in body, query


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("https://grafana.example/d/x?var-ns=prod", True),
        ("HTTP://prometheus:9090/graph?g0.expr=up", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox(1)", False),
        ("//evil.example/x", False),
        ("http://", False),
        ("http://[::1", False),  # urlsplit refuses it
        ("/incidents", False),  # links from data are absolute or nothing
        (None, False),
    ],
)
def test_only_http_urls_become_links(value, allowed):
    assert (href(value) is not None) is allowed


async def test_the_runbook_file_links_to_its_source_when_configured(aiohttp_client, settings):
    template = "https://git.example/ops/blob/{commit}/runbooks/{file}?plain=1"
    runbooks = settings.runbooks.model_copy(update={"source_url": template})
    linked = await aiohttp_client(
        create_app(with_basic_auth(settings.model_copy(update={"runbooks": runbooks})))
    )
    incident = await seed(linked)
    [matched] = [e for e in incident["events"] if e["kind"] == "matched"]
    commit = matched["data"].get("commit") or "HEAD"
    body = await html(linked, f"/incidents/{incident['id']}")
    url = f"https://git.example/ops/blob/{commit}/runbooks/{matched['data']['file']}?plain=1"
    assert f'<a class="runbook-file" href="{url}"' in body


async def test_without_a_source_url_the_runbook_file_is_plain_text(pages):
    incident = await seed(pages)
    body = await html(pages, f"/incidents/{incident['id']}")
    assert 'class="runbook-file"' not in body


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://git.example/{file}", "must be an http(s) URL"),
        ("javascript:alert(1)//{file}", "must be an http(s) URL"),
        ("https://git.example/{branch}/{file}", "unknown placeholder {branch}"),
    ],
)
def test_a_bad_source_url_is_refused_by_name(value, message):
    with pytest.raises(ConfigError) as info:
        Settings.load(None, **{"runbooks.source_url": value})
    assert "runbooks.source_url" in str(info.value)
    assert message in str(info.value)
