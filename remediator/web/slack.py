"""``POST /slack/interactions``: Approve / Reject clicks from Slack.

The signature is checked on the raw body with slack_sdk's verifier (5-minute window)
before anything is parsed, so a forged or replayed click changes nothing. Slack wants an
answer within 3 seconds: the handler answers at once and decides in a background task
the app awaits on shutdown.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import structlog
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from remediator.keys import APPROVER, BACKGROUND, CLOCK, ENGINE, METRICS
from remediator.models.ids import ID_PATTERN
from remediator.pipeline import approve
from remediator.web.errors import error

log = structlog.get_logger(__name__)
MAX_BODY = 64 * 1024
DECISIONS = {"approve": "approve", "reject": "reject"}


async def interactions(request: web.Request) -> web.Response:
    approver = request.app[APPROVER]
    secret = approver.settings.resolved_signing_secret()
    if secret is None:
        return error(404, "Slack interactivity is not configured (slack.signing_secret)")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return error(413, f"body larger than {MAX_BODY} bytes")
    if not SignatureVerifier(secret).is_valid_request(body, dict(request.headers)):
        request.app[METRICS].slack_rejected.inc()
        return error(401, "invalid or stale Slack signature")
    click = _parse(body)
    if click is None:
        return error(400, "not a block_actions payload with an approve/reject button", "payload")
    request.app[BACKGROUND].spawn(_decide(request.app, *click))
    return web.Response(status=200)


def _parse(body: bytes) -> tuple[str, str, str, str] | None:
    """(approval id, user, decision, channel) from a signed body, or None."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload: Any = json.loads(form["payload"][0])
        action = payload["actions"][0]
        user = str(payload["user"]["id"])
        value, decision = str(action["value"]), DECISIONS[str(action["action_id"])]
        container = payload.get("container") or {}
        channel = str(container.get("channel_id") or (payload.get("channel") or {}).get("id"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if payload.get("type") != "block_actions" or not ID_PATTERN.fullmatch(value):
        return None
    return value, user, decision, channel


async def _decide(
    app: web.Application, approval_id: str, user: str, decision: str, channel: str
) -> None:
    approver, engine = app[APPROVER], app[ENGINE]
    try:
        outcome = await approve.decide(engine, approval_id, user, decision, "slack", app[CLOCK]())
        app[METRICS].approvals.labels(outcome.kind).inc()
        shown = await approve.show(engine, approver, outcome)
        if not shown and approver.slack is not None:
            text = (
                "You are not an approver for this request."
                if outcome.kind == "not_approver"
                else f"Nothing done: {outcome.message}."
            )
            await approver.slack.ephemeral(channel, user, text)
    except Exception:  # a click must never take the server down; the log says why
        log.exception("slack_decision_failed", approval_id=approval_id, user=user)
