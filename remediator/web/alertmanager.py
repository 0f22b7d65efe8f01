"""``POST /api/v1/alerts``: the Alertmanager webhook receiver.

Nothing slow happens here: parse, persist in one transaction, answer. 200 means the
alerts are durably stored; 503 means they are not and Alertmanager should retry; 4xx
only for requests that can never succeed (Alertmanager does not retry those).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from remediator.errors import StoreUnavailable
from remediator.keys import METRICS, SETTINGS, WRITER
from remediator.models.alert import Notification
from remediator.web.errors import error, undecodable


def describe(exc: ValidationError) -> tuple[str, str]:
    """The first problem as (field path, message), e.g. ('alerts.0.startsAt', '...')."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid":
        return "", f"malformed JSON: {first['msg']}"
    return field, f"{field or 'body'}: {first['msg']}"


async def receive(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    response = await _receive(request)
    metrics.webhook_requests.labels(str(response.status)).inc()
    return response


async def _receive(request: web.Request) -> web.Response:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].server.max_body_bytes
        return error(413, f"body larger than {limit} bytes (server.max_body_bytes)")
    except web.RequestPayloadError as exc:
        return undecodable(exc)
    try:
        notification = Notification.model_validate_json(body)
    except ValidationError as exc:
        field, message = describe(exc)
        return error(400, message, field or None)
    try:
        result = await request.app[WRITER].write(notification)
    except StoreUnavailable:
        return error(503, "store unavailable; retry later")
    metrics = request.app[METRICS]
    firing = result.received - result.received_resolved
    if firing:
        metrics.alerts_received.labels("firing").inc(firing)
    if result.received_resolved:
        metrics.alerts_received.labels("resolved").inc(result.received_resolved)
    metrics.renotifications.inc(result.renotified)
    return web.json_response(
        {
            "status": "ok",
            "received": result.received,
            "renotified": result.renotified,
            "resolved": result.resolved,
        }
    )
