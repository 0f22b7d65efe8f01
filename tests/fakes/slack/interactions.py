"""What Slack sends to *our* server when a user clicks a button: a signed form POST.

Everything is built by hand (``hmac``/``hashlib``/``urllib``), independently of
``slack_sdk``, so tests can check the code under test (and ``slack_sdk``'s
``SignatureVerifier``) against it rather than against itself::

    payload = block_action_payload(user_id="U1", action_id="approve", value="req-7f3a")
    body = form_body(payload)
    headers = sign(body, "test-signing-secret")
    resp = await client.post("/slack/interactions", data=body, headers=headers)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

Json = dict[str, Any]

DEFAULT_MESSAGE_TS = "1714557600.000100"  # the first ts a fresh FakeSlack hands out
DEFAULT_BLOCK_ID = "rem-block"
DEFAULT_RESPONSE_URL = "https://hooks.slack.com/actions/T1/1714557612/fake-response-token"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
SIGNATURE_VERSION = "v0"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"


def block_action_payload(
    *,
    user_id: str,
    action_id: str,
    value: str,
    channel: str = "C123",
    message_ts: str = DEFAULT_MESSAGE_TS,
    block_id: str = DEFAULT_BLOCK_ID,
    response_url: str | None = None,
    username: str = "alice",
    team_id: str | None = "T1",
    team_domain: str = "acme",
    channel_name: str = "ops",
    api_app_id: str = "A1",
    blocks: list[Json] | None = None,
    message_text: str = "",
    bot_user_id: str = "UBOT",
    action_type: str = "button",
    action_text: str | None = None,
    style: str | None = None,
    action_ts: str | None = None,
    trigger_id: str | None = None,
    is_ephemeral: bool = False,
) -> Json:
    """A full ``block_actions`` payload (SPECS.md section 6, bolt-js ``BlockAction``).

    ``team_id=None`` gives ``"team": null`` as on org-wide installs (``user.team_id`` is
    then omitted as well). ``blocks`` is the clicked message's blocks (default: a single
    actions block holding the clicked button).
    """
    action_ts = action_ts or f"{time.time():.6f}"
    if trigger_id is None:
        digest = hashlib.sha256(f"{action_ts}:{user_id}:{action_id}".encode()).hexdigest()
        trigger_id = f"{int(float(action_ts))}.{int(digest[:10], 16)}.{digest[10:42]}"
    action: Json = {
        "type": action_type,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "action_ts": action_ts,
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": action_text or action_id, "emoji": True}
    if style is not None:
        action["style"] = style
    if blocks is None:
        element = {k: v for k, v in action.items() if k not in ("block_id", "action_ts")}
        blocks = [{"type": "actions", "block_id": block_id, "elements": [element]}]
    user: Json = {"id": user_id, "username": username, "name": username}
    if team_id is not None:
        user["team_id"] = team_id
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": api_app_id,
        "token": "legacy-verification-token",  # deprecated; present in real payloads
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id,
        "team": None if team_id is None else {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "user": bot_user_id,
            "bot_id": "B1",
            "ts": message_ts,
            "text": message_text,
            "blocks": blocks,
        },
        "state": {"values": {}},
        "response_url": response_url or DEFAULT_RESPONSE_URL,
        "actions": [action],
    }


def form_body(payload: Json) -> bytes:
    """``payload=<urlencoded JSON>``, the body Slack POSTs to the Request URL."""
    encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return urllib.parse.urlencode({"payload": encoded}).encode("ascii")


def parse_form_body(body: bytes) -> Json:
    """The inverse of :func:`form_body` (for tests that inspect a body)."""
    fields = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True)
    payload: Json = json.loads(fields["payload"][0])
    return payload


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """``v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>``."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: timestamp (default: now), signature and the
    form Content-Type."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signature(body, secret, ts),
        "Content-Type": FORM_CONTENT_TYPE,
    }


def signed_request(
    payload: Json, secret: str, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` for ``payload``: :func:`form_body` plus :func:`sign`."""
    body = form_body(payload)
    return body, sign(body, secret, timestamp)
