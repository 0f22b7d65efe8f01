"""``remediator incidents list|show``: requests, tables, JSON, errors and exit codes.

Most tests run the CLI in-process against a canned HTTP server (answers built from the
API's own models); the last one reads a real server, with the CLI in a thread because
it runs its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from remediator.authoring.incidents_view import clean
from remediator.cli import main
from remediator.models.incident import (
    Execution,
    IncidentDetail,
    IncidentPage,
    IncidentSummary,
    TimelineEvent,
)
from tests.conftest import AUTH, TOKEN, eventually
from tests.payloads import alert, crashloop_labels, notification

T0 = datetime(2025, 5, 1, 10, 0, 0, tzinfo=UTC)
ID_A, ID_B = "0633f5c2a8e1d3a7b9c1d", "0633f5c2a8e0000011112"


def summary(incident_id: str, **overrides: Any) -> IncidentSummary:
    fields: dict[str, Any] = {
        "id": incident_id,
        "status": "open",
        "alertname": "KubePodCrashLooping",
        "namespace": "prod",
        "severity": "critical",
        "summary": "pod is crash looping",
        "team": "web-team",
        "fingerprint": "1a2b3c4d5e6f7a8b",
        "starts_at": T0,
        "notifications": 3,
        "created_at": T0 + timedelta(seconds=5),
        "updated_at": T0 + timedelta(seconds=9),
        "resolved_at": None,
    }
    fields.update(overrides)
    return IncidentSummary(**fields)


def event(n: int, kind: str, message: str, **overrides: Any) -> TimelineEvent:
    fields: dict[str, Any] = {
        "id": n,
        "at": T0 + timedelta(seconds=n),
        "stage": "ingest",
        "kind": kind,
        "runbook": None,
        "reason": None,
        "message": message,
        "data": {},
    }
    fields.update(overrides)
    return TimelineEvent(**fields)


HOSTILE = "[bold]boom[/bold] \x1b[2J\u202egnp.exe"

DETAIL = IncidentDetail(
    **summary(ID_A, status="resolved", resolved_at=T0 + timedelta(minutes=5)).model_dump(),
    labels={**crashloop_labels(), "note": HOSTILE},
    annotations={"summary": "pod is crash looping", "runbook_url": "https://wiki/crashloop"},
    generator_url="http://prometheus:9090/graph?g0.expr=up",
    external_url="http://alertmanager:9093",
    group_key='{}:{alertname="KubePodCrashLooping"}',
    events=[
        event(1, "received", "firing alert received"),
        event(
            2, "matched", "matched crashloop-restart@1", stage="match", runbook="crashloop-restart"
        ),
        event(
            3,
            "context",
            "Deployment prod/web: 1 of 3 ready; pod web-1: waiting: CrashLoopBackOff",
            stage="context",
            runbook="crashloop-restart",
            data={"logs": ["panic: SECRET-LOOKING LOG LINE"], "pods": [{"name": "web-1"}]},
        ),
        event(
            4,
            "blocked",
            "cooldown until 10:10",
            stage="guard",
            runbook="crashloop-restart",
            reason="cooldown",
        ),
        event(5, "dry_run", "would restart Deployment prod/web", stage="execute"),
        event(6, "resolved", "alert resolved"),
    ],
    executions=[
        Execution(
            runbook="crashloop-restart",
            version="1",
            step=0,
            action="restart",
            target="Deployment/prod/web",
            dry_run=True,
            status="dry_run",
            detail="would restart Deployment prod/web",
            created_at=T0 + timedelta(seconds=5),
            finished_at=T0 + timedelta(seconds=5),
        )
    ],
)


class _Canned(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: Any = self.server
        server.requests.append((self.path, dict(self.headers)))
        status, body = server.answers.get(urlsplit(self.path).path, (404, '{"error": "nope"}'))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Api:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server: Any = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    def answer(self, path: str, body: str, status: int = 200) -> None:
        self._server.answers[path] = (status, body)

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return list(self._server.requests)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.delenv("REMEDIATOR_AUTH__BEARER_TOKEN", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.answers, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Api(server)
    server.shutdown()
    server.server_close()
    thread.join()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err, "no terminal escapes when the output is not a terminal"
    return code, out, err


def test_list_asks_with_the_filters_and_prints_a_table(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATOR_AUTH__BEARER_TOKEN", "env-token")
    page = IncidentPage(
        items=[
            summary(ID_A),
            summary(
                ID_B,
                status="resolved",
                team="",
                alertname="KubePersistentVolumeFillingUp",
                summary="volume data is 95% full",
                notifications=1,
                resolved_at=T0,
            ),
        ],
        next_cursor=ID_B,
    )
    api.answer("/api/v1/incidents", page.model_dump_json())

    code, out, err = run(
        capsys, "incidents", "list", "--status", "open", "--namespace", "prod",
        "--team", "web-team", "--since", "2025-05-01", "--until", "2025-05-02T10:00Z",
        "--limit", "2", "--url", api.url,
    )  # fmt: skip

    assert (code, err) == (0, "")
    [(path, headers)] = api.requests
    assert urlsplit(path).path == "/api/v1/incidents"
    assert parse_qs(urlsplit(path).query) == {
        "status": ["open"],
        "namespace": ["prod"],
        "team": ["web-team"],
        "since": ["2025-05-01"],
        "until": ["2025-05-02T10:00Z"],
        "limit": ["2"],
    }
    assert headers["Authorization"] == "Bearer env-token"
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("id"))
    for column in ("status", "alertname", "namespace", "team", "severity", "started (UTC)",
                   "notifications", "summary"):  # fmt: skip
        assert column in header
    row_a = next(line for line in lines if ID_A in line)
    for value in ("open", "KubePodCrashLooping", "prod", "web-team", "critical",
                  "2025-05-01 10:00:00", "3", "pod is crash looping"):  # fmt: skip
        assert value in row_a
    row_b = next(line for line in lines if ID_B in line)
    assert "resolved" in row_b
    assert "volume data is 95% full" in row_b
    assert "—" in row_b  # no team yet
    assert lines[-1] == (
        "next page: remediator incidents list --status open --namespace prod --team web-team "
        f"--since 2025-05-01 --until 2025-05-02T10:00Z --limit 2 --url {api.url} --cursor {ID_B}"
    )


def test_list_json_prints_the_answer_as_it_came(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    body = IncidentPage(items=[summary(ID_A)], next_cursor=None).model_dump_json()
    api.answer("/api/v1/incidents", body)

    code, out, _ = run(capsys, "incidents", "list", "--json", "--url", api.url, "--token", "t")

    assert code == 0
    assert out == body + "\n"
    assert api.requests[0][1]["Authorization"] == "Bearer t"


def test_an_empty_list_says_so_without_a_next_page(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("/api/v1/incidents", IncidentPage(items=[], next_cursor=None).model_dump_json())

    code, out, _ = run(capsys, "incidents", "list", "--cursor", ID_B, "--url", api.url)

    assert (code, out) == (0, "no incidents\n")
    assert parse_qs(urlsplit(api.requests[0][0]).query) == {"cursor": [ID_B]}
    assert "Authorization" not in api.requests[0][1]


def test_show_prints_the_header_the_timeline_and_the_executions(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(f"/api/v1/incidents/{ID_A}", DETAIL.model_dump_json())

    code, out, err = run(capsys, "incidents", "show", ID_A, "--url", api.url)

    assert (code, err) == (0, "")
    assert f"incident {ID_A}" in out
    header = out[: out.index("timeline (6 events)")]
    for value in ("KubePodCrashLooping", "resolved at 2025-05-01 10:05:00", "web-team",
                  "deployment=web", "namespace=prod", "runbook_url=https://wiki/crashloop",
                  "http://prometheus:9090/graph?g0.expr=up"):  # fmt: skip
        assert value in header
    timeline = out[out.index("timeline (6 events)") : out.index("executions (1)")]
    for column in ("time (UTC)", "stage", "kind", "runbook", "reason", "message"):
        assert column in timeline
    blocked = next(line for line in timeline.splitlines() if "blocked" in line)
    for value in ("2025-05-01 10:00:04", "guard", "crashloop-restart", "cooldown"):
        assert value in blocked
    context = next(line for line in timeline.splitlines() if " context " in line)
    assert "Deployment prod/web: 1 of 3 ready" in context
    assert "SECRET-LOOKING LOG LINE" not in out  # the snapshot's data is for --json
    assert "--json" in timeline
    kinds = ("received", "matched", "context", "blocked", "dry_run", "resolved")
    assert [out.index(f" {k} ", out.index("timeline")) for k in kinds] == sorted(
        out.index(f" {k} ", out.index("timeline")) for k in kinds
    )
    executions = out[out.index("executions (1)") :]
    row = next(line for line in executions.splitlines() if "restart " in line)
    for value in ("crashloop-restart@1", "Deployment/prod/web", "dry run", "dry_run"):
        assert value in row


def test_alert_text_is_shown_literally_never_as_markup_or_escapes(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(f"/api/v1/incidents/{ID_A}", DETAIL.model_dump_json())

    _, out, _ = run(capsys, "incidents", "show", ID_A, "--url", api.url)

    assert "note=[bold]boom[/bold] \\x1b[2J\\u202egnp.exe" in out
    assert clean("a\tb\x07c\x9bd\u2066e\nf") == "a\\x09b\\x07c\\x9bd\\u2066e\nf"


def test_a_narrow_terminal_leaves_columns_out_and_says_which(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    api.answer(
        "/api/v1/incidents", IncidentPage(items=[summary(ID_A)], next_cursor=None).model_dump_json()
    )
    api.answer(f"/api/v1/incidents/{ID_A}", DETAIL.model_dump_json())

    _, listing, _ = run(capsys, "incidents", "list", "--url", api.url)
    _, detail, _ = run(capsys, "incidents", "show", ID_A, "--url", api.url)

    for out in (listing, detail):
        assert max(len(line) for line in out.splitlines()) <= 80
    row = next(line for line in listing.splitlines() if ID_A in line)
    assert "KubePodCrashLooping" in row
    assert "pod is crash looping" in row
    assert "not shown for lack of width: namespace, team, severity" in listing
    assert "cooldown" in detail  # the reason always stays
    assert "not shown for lack of width: stage, runbook" in detail


def test_show_json_and_the_id_in_the_path(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(f"/api/v1/incidents/{ID_A}", DETAIL.model_dump_json())

    code, out, _ = run(capsys, "incidents", "show", ID_A, "--json", "--url", api.url + "/")

    assert code == 0
    assert IncidentDetail.model_validate_json(out) == DETAIL
    code, _, err = run(capsys, "incidents", "show", "../alerts?x=1", "--url", api.url)
    assert (code, err) == (1, "remediator: nope (HTTP 404)\n")
    path = urlsplit(api.requests[-1][0]).path
    prefix, segment = path.rsplit("/", 1)  # the id stays one path segment
    assert (prefix, unquote(segment)) == ("/api/v1/incidents", "../alerts?x=1")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, json.dumps({"error": f"no incident {ID_B!r}"}), f"no incident {ID_B!r} (HTTP 404)"),
        (401, json.dumps({"error": "missing or wrong credentials"}), "missing or wrong"),
        (400, json.dumps({"error": "limit must be …", "field": "limit"}), "limit must be …"),
        (502, "<html>bad gateway</html>", "<html>bad gateway</html> (HTTP 502)"),
    ],
)
def test_http_errors_print_the_servers_message_and_exit_1(
    api: Api, capsys: pytest.CaptureFixture[str], status: int, body: str, message: str
) -> None:
    api.answer(f"/api/v1/incidents/{ID_B}", body, status)
    api.answer("/api/v1/incidents", body, status)

    for argv in (["show", ID_B], ["list"]):
        code, out, err = run(capsys, "incidents", *argv, "--url", api.url)
        assert (code, out) == (1, "")
        assert err.startswith("remediator: ")
        assert message in err


def test_an_answer_that_is_not_the_api_exits_1(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("/api/v1/incidents", '{"incidents": []}')

    code, out, err = run(capsys, "incidents", "list", "--url", api.url)

    assert (code, out) == (1, "")
    assert f"unexpected answer from {api.url}" in err


def test_an_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"

    for argv in (["list"], ["show", ID_A]):
        code, out, err = run(capsys, "incidents", *argv, "--url", url)
        assert (code, out) == (1, "")
        assert err.startswith(f"cannot reach {url}: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["incidents"],
        ["incidents", "show"],
        ["incidents", "list", "--status", "closed"],
        ["incidents", "list", "--limit", "0"],
        ["incidents", "list", "--limit", "501"],
        ["incidents", "list", "--limit", "²"],
        ["incidents", "list", "--bogus"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: remediator" in capsys.readouterr().err


async def test_against_the_real_server(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    resp = await client.post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    assert resp.status == 200, await resp.text()

    async def dry_run() -> Any:
        page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
        [item] = page["items"]
        resp = await client.get(f"/api/v1/incidents/{item['id']}", headers=AUTH)
        detail = await resp.json()
        return detail if any(e["kind"] == "dry_run" for e in detail["events"]) else None

    detail = await eventually(dry_run)
    url = str(client.make_url("")).rstrip("/")

    def cli(*argv: str) -> tuple[int, str, str]:
        return run(capsys, "incidents", *argv, "--url", url, "--token", TOKEN)

    code, out, err = await asyncio.to_thread(cli, "list", "--status", "open")
    assert (code, err) == (0, "")
    assert detail["id"] in out
    assert "KubePodCrashLooping" in out

    code, out, err = await asyncio.to_thread(cli, "show", detail["id"])
    assert (code, err) == (0, "")
    for kind in ("received", "matched", "planned", "dry_run"):
        assert f" {kind} " in out
    assert "executions (1)" in out

    code, out, _ = await asyncio.to_thread(cli, "show", detail["id"], "--json")
    assert (code, json.loads(out)["id"]) == (0, detail["id"])

    code, out, err = await asyncio.to_thread(cli, "show", "0" * 21)
    assert (code, out) == (1, "")
    assert f"no incident {'0' * 21!r} (HTTP 404)" in err
