"""GET /api/v1/incidents and /api/v1/incidents/{id}: order, filters, paging, errors, auth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from yarl import URL

from tests.conftest import AUTH, eventually
from tests.payloads import alert, crashloop_labels, fingerprint, notification

ALL = ("E", "D", "C", "B", "A")  # newest first: the reverse of the order they are sent in


@dataclass(frozen=True)
class Seed:
    labels: dict[str, str]
    starts_at: str
    done: str  # the event kind that ends this alert's pipeline run


def disk_labels(**overrides: str) -> dict[str, str]:
    labels = {
        "alertname": "KubePersistentVolumeFillingUp",
        "namespace": "prod",
        "persistentvolumeclaim": "data",
        "severity": "warning",
    }
    labels.update(overrides)
    return labels


# Sent A..E, with startsAt deliberately out of that order: the list is ordered by when
# remediator received an alert, not by when Prometheus says it started.
SEEDS = {
    "A": Seed(crashloop_labels(), "2025-05-01T10:00:00.123456789Z", "dry_run"),
    "B": Seed(
        crashloop_labels(namespace="stage", deployment="api", pod="api-1"),
        "2025-05-01T09:00:00Z",
        "dry_run",
    ),
    "C": Seed(disk_labels(), "2025-05-01T11:00:00Z", "dry_run"),  # resolved afterwards
    "D": Seed(
        crashloop_labels(namespace="payments", deployment="pay", pod="pay-1"),
        "2025-05-01T08:00:00Z",
        "blocked",
    ),
    "E": Seed(
        {"alertname": "HighLatency", "namespace": "prod", "severity": "warning"},
        "2025-05-01T12:00:00Z",
        "no_match",
    ),
}


async def get_json(client, path, *, expect=200, **query):
    resp = await client.get(path, params=query, headers=AUTH)
    assert resp.status == expect, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def detail(client, incident_id):
    return await get_json(client, f"/api/v1/incidents/{incident_id}")


async def has_kind(client, incident_id, kind):
    full = await detail(client, incident_id)
    return full if any(e["kind"] == kind for e in full["events"]) else None


async def send(client, body):
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.fixture
async def seeded(client):
    """Five incidents, each fully processed before the next is sent; returns name -> id."""
    ids: dict[str, str] = {}
    for name, seed in SEEDS.items():
        answer = await send(client, notification(alert(seed.labels, starts_at=seed.starts_at)))
        assert answer["received"] == 1
        [newest, *_] = (await get_json(client, "/api/v1/incidents"))["items"]
        assert newest["fingerprint"] == fingerprint(seed.labels)
        ids[name] = newest["id"]
        await eventually(lambda i=ids[name], k=seed.done: has_kind(client, i, k))
    c = SEEDS["C"]
    resolved = alert(c.labels, status="resolved", starts_at=c.starts_at)
    assert (await send(client, notification(resolved)))["resolved"] == 1
    return ids


async def listed(client, **query):
    return [item["id"] for item in (await get_json(client, "/api/v1/incidents", **query))["items"]]


def names(ids, *wanted):
    return [ids[n] for n in wanted]


async def test_newest_first(client, seeded):
    page = await get_json(client, "/api/v1/incidents")
    assert [i["id"] for i in page["items"]] == names(seeded, *ALL)
    assert page["next_cursor"] is None
    created = [i["created_at"] for i in page["items"]]
    assert created == sorted(created, reverse=True)
    by_id = {i["id"]: i for i in page["items"]}
    a, c = by_id[seeded["A"]], by_id[seeded["C"]]
    assert (a["status"], a["namespace"], a["alertname"]) == ("open", "prod", "KubePodCrashLooping")
    assert a["starts_at"] == "2025-05-01T10:00:00.123456Z"
    assert (c["status"], c["alertname"]) == ("resolved", "KubePersistentVolumeFillingUp")
    assert c["resolved_at"] is not None
    assert a["resolved_at"] is None


FILTER_CASES = [
    ({"status": "open"}, ("E", "D", "B", "A")),
    ({"status": "resolved"}, ("C",)),
    ({"namespace": "prod"}, ("E", "C", "A")),
    ({"namespace": "stage"}, ("B",)),
    ({"namespace": "payments"}, ("D",)),
    ({"namespace": "PROD"}, ()),
    ({"namespace": "kube-system"}, ()),
    ({"alertname": "KubePodCrashLooping"}, ("D", "B", "A")),
    ({"alertname": "KubePersistentVolumeFillingUp"}, ("C",)),
    ({"alertname": "HighLatency"}, ("E",)),
    ({"alertname": "Nope"}, ()),
    ({"runbook": "crashloop"}, ("D", "B", "A")),
    ({"runbook": "disk-notify"}, ("C",)),
    ({"runbook": "no-such-runbook"}, ()),
    ({"namespace": "prod", "runbook": "crashloop"}, ("A",)),
    ({"status": "open", "namespace": "prod"}, ("E", "A")),
    ({"status": "resolved", "runbook": "crashloop"}, ()),
    ({"alertname": "KubePodCrashLooping", "namespace": "stage", "status": "open"}, ("B",)),
    # An empty value means "no filter", as if the parameter were absent.
    ({"namespace": ""}, ALL),
]


async def test_filters(client, seeded):
    # One seeded app for every case: seeding (five alerts through the worker) is the slow part.
    for query, expected in FILTER_CASES:
        assert await listed(client, **query) == names(seeded, *expected), query


async def test_runbook_filter_means_matched_not_merely_mentioned(client, seeded):
    # D was matched by crashloop and then blocked by the guard: still a crashloop incident.
    full = await detail(client, seeded["D"])
    assert [(e["kind"], e["runbook"], e["reason"]) for e in full["events"]] == [
        ("received", None, None),
        ("matched", "crashloop", None),
        ("planned", "crashloop", None),
        ("blocked", "crashloop", "namespace_not_allowed"),
    ]
    # E matched nothing, so no runbook filter returns it.
    e_kinds = [e["kind"] for e in (await detail(client, seeded["E"]))["events"]]
    assert e_kinds == ["received", "no_match"]
    for runbook in ("crashloop", "disk-notify"):
        assert seeded["E"] not in await listed(client, runbook=runbook)


async def test_paging_with_cursor(client, seeded):
    pages = []
    query = {"limit": "2"}
    while True:
        page = await get_json(client, "/api/v1/incidents", **query)
        pages.append([i["id"] for i in page["items"]])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["items"][-1]["id"]
        query = {"limit": "2", "cursor": page["next_cursor"]}
        assert len(pages) < 10, "paging does not terminate"
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [i for p in pages for i in p]
    assert len(set(flat)) == 5
    assert flat == names(seeded, *ALL)


async def test_page_that_ends_exactly_at_the_limit_has_no_cursor(client, seeded):
    page = await get_json(client, "/api/v1/incidents", limit="5")
    assert len(page["items"]) == 5
    assert page["next_cursor"] is None
    page = await get_json(client, "/api/v1/incidents", limit="4")
    assert [i["id"] for i in page["items"]] == names(seeded, "E", "D", "C", "B")
    assert page["next_cursor"] == seeded["B"]
    last = await get_json(client, "/api/v1/incidents", limit="4", cursor=page["next_cursor"])
    assert [i["id"] for i in last["items"]] == [seeded["A"]]
    assert last["next_cursor"] is None


async def test_paging_keeps_the_filter(client, seeded):
    first = await get_json(client, "/api/v1/incidents", status="open", limit="2")
    assert [i["id"] for i in first["items"]] == names(seeded, "E", "D")
    assert first["next_cursor"] == seeded["D"]
    second = await get_json(
        client, "/api/v1/incidents", status="open", limit="2", cursor=first["next_cursor"]
    )
    assert [i["id"] for i in second["items"]] == names(seeded, "B", "A")
    assert second["next_cursor"] is None


async def test_limit_bounds_are_inclusive(client, seeded):
    assert await listed(client, limit="1") == [seeded["E"]]
    assert await listed(client, limit="500") == names(seeded, *ALL)


LIMIT_ERROR = {"error": "limit must be a whole number from 1 to 500", "field": "limit"}
STATUS_ERROR = {"error": "status must be one of open, resolved", "field": "status"}
CURSOR_ERROR = {
    "error": "cursor must be a next_cursor value from a previous page",
    "field": "cursor",
}


SINCE_ERROR = {
    "error": "since must be an ISO date or date and time, e.g. 2025-05-01 or 2025-05-01T10:00Z",
    "field": "since",
}
UNTIL_ERROR = {"error": SINCE_ERROR["error"].replace("since", "until"), "field": "until"}


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ({"limit": "0"}, LIMIT_ERROR),
        ({"limit": "501"}, LIMIT_ERROR),
        ({"limit": "abc"}, LIMIT_ERROR),
        ({"limit": "-1"}, LIMIT_ERROR),
        ({"limit": "1.5"}, LIMIT_ERROR),
        ({"limit": "99999999999999999999999"}, LIMIT_ERROR),
        # SUPERSCRIPT TWO: str.isdigit() is True but int() refuses it (was a 500).
        ({"limit": "\u00b2"}, LIMIT_ERROR),
        ({"limit": "\u0663"}, LIMIT_ERROR),  # ARABIC-INDIC DIGIT THREE: not ASCII
        ({"status": "bogus"}, STATUS_ERROR),
        ({"status": "OPEN"}, STATUS_ERROR),
        ({"page": "2"}, {"error": "unknown query parameter 'page'", "field": "page"}),
        ({"Limit": "2"}, {"error": "unknown query parameter 'Limit'", "field": "Limit"}),
        (
            {"status": "open", "zeta": "1", "alpha": "1"},
            {"error": "unknown query parameter 'alpha'", "field": "alpha"},
        ),
        ({"cursor": "x' OR 1=1"}, CURSOR_ERROR),
        ({"cursor": "0" * 22}, CURSOR_ERROR),
        ({"since": "yesterday"}, SINCE_ERROR),
        ({"since": "2025-13-01"}, SINCE_ERROR),
        ({"since": "0001-01-01T00:00:00+01:00"}, SINCE_ERROR),  # before year 1 in UTC
        ({"until": "9999-12-31"}, UNTIL_ERROR),  # the day after is past year 9999
        (
            {"since": "2025-05-02", "until": "2025-05-01T23:59Z"},
            {"error": "until must be later than since", "field": "until"},
        ),
    ],
)
async def test_bad_query_gets_400_naming_the_field(client, query, body):
    assert await get_json(client, "/api/v1/incidents", expect=400, **query) == body


async def test_empty_or_padded_values_mean_what_the_pages_send(client, seeded):
    # A form submits every field, empty ones too: empty is no filter, as on /incidents.
    assert await listed(client, status="", limit="") == names(seeded, *ALL)
    assert await listed(client, limit=" 2") == names(seeded, "E", "D")


async def test_since_and_until_bound_when_the_incident_was_opened(client, seeded):
    page = await get_json(client, "/api/v1/incidents")
    created = {i["id"]: datetime.fromisoformat(i["created_at"]) for i in page["items"]}
    b = created[seeded["B"]]
    day = b.date()
    assert await listed(client, since=b.isoformat()) == names(seeded, "E", "D", "C", "B")
    assert await listed(client, until=b.isoformat()) == names(seeded, "A")  # until excludes
    assert await listed(client, since=created[seeded["A"]].isoformat(), until=b.isoformat()) == (
        names(seeded, "A")
    )
    assert await listed(client, until=day.isoformat()) == names(seeded, *ALL)  # the whole day
    assert await listed(client, since=(day + timedelta(days=1)).isoformat()) == []
    # An offset means that instant; no offset means UTC.
    shifted = b.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert await listed(client, since=shifted) == names(seeded, "E", "D", "C", "B")
    naive = b.replace(tzinfo=None).isoformat()
    assert await listed(client, since=naive) == names(seeded, "E", "D", "C", "B")


async def test_a_cursor_that_is_not_utf8_is_refused(client):
    url = client.make_url("/api/v1/incidents").with_query(None)
    resp = await client.session.get(URL(f"{url}?cursor=%ED%A0%80", encoded=True), headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == CURSOR_ERROR


async def test_a_parameter_given_twice_is_refused(client):
    resp = await client.get(
        "/api/v1/incidents", params=[("limit", "1"), ("limit", "abc")], headers=AUTH
    )
    assert resp.status == 400
    assert await resp.json() == {
        "error": "query parameter 'limit' given more than once",
        "field": "limit",
    }


HOSTILE = [
    "' OR 1=1 --",
    "'; DROP TABLE incidents; --",
    '" OR ""="',
    "\x00",
    "prod\x00",
    "%00",
    "%",
    "*",
    "prod%",
    "\u202eprod",
    "../../etc/passwd",
    "x" * 7000,  # long, but still under aiohttp's request-line limit: reaches the handler
]


@pytest.fixture
async def stored(client):
    """Two stored incidents, not waited on: enough to see that nothing leaks or vanishes."""
    body = notification(alert(), alert(crashloop_labels(namespace="stage", deployment="api")))
    assert (await send(client, body))["received"] == 2
    ids = await listed(client)
    assert len(ids) == 2
    return ids


@pytest.mark.parametrize("name", ["namespace", "alertname", "runbook"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_filter_values_match_nothing(client, stored, name, value):
    page = await get_json(client, "/api/v1/incidents", **{name: value})
    assert page == {"items": [], "next_cursor": None}
    # Nothing was injected: the data is all still there.
    assert await listed(client) == stored


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_status_is_400(client, value):
    assert await get_json(client, "/api/v1/incidents", expect=400, **{"status": value}) == (
        STATUS_ERROR
    )


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_cursor_never_500(client, stored, value):
    resp = await client.get("/api/v1/incidents", params={"cursor": value}, headers=AUTH)
    assert resp.status in (200, 400), await resp.text()
    page = await resp.json()
    if resp.status == 200:
        ids = [i["id"] for i in page["items"]]
        # At most the real rows, in the usual order: a cursor only ever narrows.
        assert ids == [i for i in stored if i in ids]
    assert await listed(client) == stored


@pytest.mark.parametrize("name", ["namespace", "alertname", "runbook", "cursor", "limit"])
async def test_ten_kilobyte_value_is_refused_not_500(client, name):
    # aiohttp refuses a request line over 8190 bytes before the handler sees it.
    resp = await client.get("/api/v1/incidents", params={name: "x" * 10240}, headers=AUTH)
    assert resp.status == 400
    assert (await client.get("/api/v1/incidents", headers=AUTH)).status == 200


async def test_raw_hostile_query_strings(client, stored):
    for raw in ("namespace=%00", "namespace=%ED%A0%80", "namespace=%FF%FE", "alertname=%E2%80%AE"):
        resp = await client.get(f"/api/v1/incidents?{raw}", headers=AUTH)
        assert resp.status == 200, raw
        assert await resp.json() == {"items": [], "next_cursor": None}, raw
    resp = await client.get("/api/v1/incidents?=x", headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {"error": "unknown query parameter ''", "field": ""}


async def test_detail_has_labels_timeline_and_executions(client, seeded):
    full = await detail(client, seeded["A"])
    labels = crashloop_labels()
    summary = {i["id"]: i for i in (await get_json(client, "/api/v1/incidents"))["items"]}
    assert {k: v for k, v in full.items() if k in summary[seeded["A"]]} == summary[seeded["A"]]
    assert full["labels"] == labels
    assert full["annotations"] == {"summary": "pod is crash looping"}
    assert full["fingerprint"] == fingerprint(labels)
    assert full["generator_url"] == "http://prometheus:9090/graph?g0.expr=up"
    assert full["external_url"] == "http://alertmanager:9093"
    assert full["group_key"] == '{}:{alertname="KubePodCrashLooping"}'
    assert full["summary"] == "pod is crash looping"
    assert (full["status"], full["severity"], full["notifications"]) == ("open", "critical", 1)

    events = full["events"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [(e["stage"], e["kind"], e["runbook"]) for e in events] == [
        ("ingest", "received", None),
        ("match", "matched", "crashloop"),
        ("plan", "planned", "crashloop"),
        ("execute", "dry_run", "crashloop"),
    ]
    assert events[0]["message"] == "firing alert received"
    assert events[0]["data"] == {"fingerprint": fingerprint(labels), "receiver": "remediator"}
    assert events[1]["data"] == {"version": "2", "file": "crashloop.yaml", "commit": None}
    assert events[3]["data"] == {"action": "restart", "step": 0, "target": "Deployment/prod/web"}

    [execution] = full["executions"]
    assert {k: v for k, v in execution.items() if k not in ("created_at", "finished_at")} == {
        "runbook": "crashloop",
        "version": "2",
        "step": 0,
        "action": "restart",
        "target": "Deployment/prod/web",
        "dry_run": True,
        "status": "dry_run",
        "detail": (
            "restart Deployment prod/web: set the pod template annotation "
            "kubectl.kubernetes.io/restartedAt to now (rolling restart of every pod)"
        ),
    }
    assert execution["finished_at"] is not None


async def test_detail_of_resolved_incident(client, seeded):
    full = await detail(client, seeded["C"])
    assert full["status"] == "resolved"
    assert full["labels"] == disk_labels()
    assert [e["kind"] for e in full["events"]] == [
        "received",
        "matched",
        "planned",
        "dry_run",
        "resolved",
    ]
    [execution] = full["executions"]
    assert (execution["runbook"], execution["action"], execution["status"]) == (
        "disk-notify",
        "notify",
        "dry_run",
    )


async def test_detail_of_blocked_incident_has_no_executions(client, seeded):
    assert (await detail(client, seeded["D"]))["executions"] == []


@pytest.mark.parametrize(
    ("path_id", "shown"),
    [
        ("0000000000000000000000", "0000000000000000000000"),
        ("nope", "nope"),
        ("%00", "\x00"),
        ("..%2F..%2Fetc", "../../etc"),
        ("' OR 1=1 --", "' OR 1=1 --"),
        ("x" * 4000, "x" * 4000),
    ],
    ids=["plausible", "word", "nul", "traversal", "quote", "long"],
)
async def test_unknown_id_is_404_with_json(client, stored, path_id, shown):
    body = await get_json(client, f"/api/v1/incidents/{path_id}", expect=404)
    assert body == {"error": f"no incident {shown!r}"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}],
    ids=["none", "wrong", "no-scheme"],
)
async def test_read_api_needs_auth(client, seeded, headers):
    for path in (
        "/api/v1/incidents",
        "/api/v1/incidents?limit=0",  # auth is checked before validation
        f"/api/v1/incidents/{seeded['A']}",
        "/api/v1/incidents/unknown",  # and before existence, which it does not reveal
    ):
        resp = await client.get(path, headers=headers)
        assert resp.status == 401, path
        assert await resp.json() == {"error": "missing or wrong credentials"}
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="remediator"'
