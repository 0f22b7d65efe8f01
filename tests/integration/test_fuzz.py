"""No input makes the webhook answer 500: random bytes, random JSON, mangled payloads."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import AUTH
from tests.payloads import alert, notification

ACCEPTABLE = {200, 400, 413}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    # One server serves every example; state piling up between examples is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


@st.composite
def mangled_payloads(draw: st.DrawFn) -> bytes:
    """A real payload with one node replaced by arbitrary JSON."""
    base = notification(alert(), alert(status="resolved", starts_at="2025-05-01T09:00:00Z"))
    path = draw(st.sampled_from(_paths(base)))
    return json.dumps(_replace(base, path, draw(json_values))).encode()


async def _post(client, body: bytes, content_type: str = "application/json") -> int:
    resp = await client.post(
        "/api/v1/alerts", data=body, headers={**AUTH, "Content-Type": content_type}
    )
    await resp.read()
    return resp.status


@FUZZ
@given(body=st.binary(max_size=2048))
async def test_random_bytes(client, body):
    assert await _post(client, body) in ACCEPTABLE


@FUZZ
@given(value=json_values)
async def test_random_json(client, value):
    assert await _post(client, json.dumps(value).encode()) in ACCEPTABLE


@FUZZ
@given(body=mangled_payloads())
async def test_mangled_payloads(client, body):
    assert await _post(client, body) in ACCEPTABLE


@FUZZ
@given(
    # Surrogates included: valid JSON escapes that no database can store as text.
    labels=st.dictionaries(
        st.text(st.characters(codec=None), min_size=1, max_size=30),
        st.text(st.characters(codec=None), max_size=200),
        max_size=8,
    ),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/x-www-form-urlencoded"]
    ),
)
async def test_hostile_labels_and_content_types(client, labels, content_type):
    body = json.dumps(notification(alert({"alertname": "X", **labels}))).encode()
    status = await _post(client, body, content_type)
    assert status in ACCEPTABLE
    assert (await client.get("/healthz")).status == 200


@st.composite
def rfc3339_times(draw: st.DrawFn) -> str:
    """Valid RFC 3339 text, leaning on the edges where an offset crosses year 1 or 9999."""
    year = draw(st.sampled_from([1, 2, 1970, 9998, 9999]) | st.integers(1, 9999))
    day = draw(st.sampled_from([(1, 1), (12, 31)]))
    clock = draw(st.sampled_from(["00:00:00", "23:59:59", "12:00:00.123456789"]))
    sign = draw(st.sampled_from("+-"))
    offset = f"{sign}{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    zone = draw(st.sampled_from(["Z", offset]))
    return f"{year:04d}-{day[0]:02d}-{day[1]:02d}T{clock}{zone}"


@FUZZ
@given(starts_at=rfc3339_times(), ends_at=rfc3339_times())
async def test_any_rfc3339_time(client, starts_at, ends_at):
    payload = notification(alert(starts_at=starts_at, ends_at=ends_at))
    assert await _post(client, json.dumps(payload).encode()) in ACCEPTABLE


@FUZZ
@given(body=st.binary(max_size=512), encoding=st.sampled_from(["gzip", "deflate", "x-gzip"]))
async def test_any_compressed_body(client, body, encoding):
    resp = await client.post(
        "/api/v1/alerts",
        data=body,
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": encoding},
    )
    await resp.read()
    assert resp.status in ACCEPTABLE
