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
