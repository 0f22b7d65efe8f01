"""The fake Slack Web API (tests/fakes/slack) against the REAL slack_sdk clients, and the
signed interaction requests against slack_sdk's SignatureVerifier.

slack_sdk and 429: ``AsyncWebClient``'s default ``retry_handlers`` are only
``[AsyncConnectionErrorRetryHandler()]`` (one retry on ServerDisconnectedError /
ServerConnectionError / ClientOSError), so a ``ratelimited`` answer raises ``SlackApiError``
at once (``e.response.status_code == 429``, ``Retry-After`` in ``e.response.headers``); it is
retried only with ``AsyncRateLimitErrorRetryHandler`` configured, which sleeps
``Retry-After + random()`` seconds. The connection-error retry also means a dropped response
to an *applied* chat.postMessage is re-sent: two messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    FakeSlack,
    block_action_payload,
    form_body,
    parse_form_body,
    sign,
    signed_request,
    validate_blocks,
)
from tests.fakes.slack.interactions import signature

TS = re.compile(r"^\d{10}\.\d{6}$")
SECRET = "test-signing-secret"

# The Block Kit message of SPECS.md section 6.
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*PodCrashLooping* prod/web-1"}},
    {
        "type": "actions",
        "block_id": "rem-7f3a",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "req-7f3a",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "confirm": {
                    "title": {"type": "plain_text", "text": "Sure?"},
                    "text": {"type": "mrkdwn", "text": "Restart web?"},
                    "confirm": {"type": "plain_text", "text": "Yes"},
                    "deny": {"type": "plain_text", "text": "No"},
                    "style": "danger",
                },
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "req-7f3a",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
]
DONE: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U1>"}}
]

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
async def client(fake_slack: FakeSlack) -> AsyncWebClient:
    """A plain AsyncWebClient exactly as production code would build it (no session:
    slack_sdk opens and closes one per call)."""
    return AsyncWebClient(token=fake_slack.bot_token, base_url=f"{fake_slack.url}/api/")


# -- Web API ------------------------------------------------------------------------------


async def test_fixture_exposes_url_token_and_secret(fake_slack: FakeSlack) -> None:
    assert fake_slack.url is not None
    assert fake_slack.url.startswith("http://127.0.0.1:")
    assert fake_slack.api_url == f"{fake_slack.url}/api/"
    assert fake_slack.bot_token == "xoxb-test"
    assert fake_slack.signing_secret == SECRET


async def test_auth_test(client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp.status_code == 200
    assert resp["ok"] is True
    assert resp["user_id"] == "UBOT"
    assert resp["team_id"] == "T1"


async def test_post_message_stores_it_and_answers_like_slack(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    resp = await client.chat_postMessage(
        channel="C123", text="Remediate PodCrashLooping?", blocks=BLOCKS
    )
    assert resp["ok"] is True
    assert resp["channel"] == "C123"
    assert resp["ts"] == "1714557600.000100"
    assert resp["message"]["blocks"] == BLOCKS
    assert resp["message"]["text"] == "Remediate PodCrashLooping?"
    assert resp["message"]["user"] == "UBOT"

    second = await client.chat_postMessage(channel="C123", text="again")
    assert TS.match(second["ts"])
    assert float(second["ts"]) > float(resp["ts"])

    [first, other] = fake_slack.messages["C123"]
    assert (first.ts, first.text, first.blocks, first.replies) == (
        resp["ts"],
        "Remediate PodCrashLooping?",
        BLOCKS,
        (),
    )
    assert other.blocks == []
    assert fake_slack.message("C123", resp["ts"]) == first
    assert fake_slack.message("C123", "1.000000") is None


async def test_recording_decodes_blocks_from_json_and_form_bodies(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C123", text="json", blocks=BLOCKS)
    # Form-encoded, as slack_sdk sends ``data=``/``params=`` calls: blocks is a JSON string.
    await client.api_call(
        "chat.postMessage",
        data={"channel": "C123", "text": "form", "blocks": json.dumps(BLOCKS)},
    )
    as_json, as_form = fake_slack.calls("chat.postMessage")
    assert as_json.content_type == "application/json"
    assert as_form.content_type == "application/x-www-form-urlencoded"
    for call in (as_json, as_form):
        assert call.params["blocks"] == BLOCKS
        assert call.token == "xoxb-test"
        assert "token" not in call.params
        assert (call.status, call.ok, call.error, call.fault) == (200, True, None, None)
        assert call.http_method == "POST"
        assert call.path == "/api/chat.postMessage"
    assert as_form.params["text"] == "form"
    assert fake_slack.messages["C123"][1].blocks == BLOCKS
    with pytest.raises(dataclasses.FrozenInstanceError):
        as_json.method = "x"  # type: ignore[misc]


async def test_update_replaces_the_stored_message(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C123", text="Remediate?", blocks=BLOCKS)
    resp = await client.chat_update(channel="C123", ts=posted["ts"], text="Approved", blocks=DONE)
    assert resp["ok"] is True
    assert (resp["channel"], resp["ts"], resp["text"]) == ("C123", posted["ts"], "Approved")
    assert resp["message"]["blocks"] == DONE

    msg = fake_slack.message("C123", posted["ts"])
    assert msg is not None
    assert (msg.text, msg.blocks, msg.edits) == ("Approved", DONE, 1)
    assert len(fake_slack.messages["C123"]) == 1

    # Like Slack, an update that leaves blocks out keeps them; ``blocks=[]`` removes them.
    await client.chat_update(channel="C123", ts=posted["ts"], text="Approved (2)")
    msg = fake_slack.message("C123", posted["ts"])
    assert msg is not None
    assert (msg.text, msg.blocks, msg.edits) == ("Approved (2)", DONE, 2)


async def test_update_of_an_unknown_message_is_message_not_found(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel="C123", ts="1714557600.999999", text="x")
    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == "message_not_found"


async def test_thread_replies_are_stored_under_their_parent(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C123", text="Remediate?", blocks=BLOCKS)
    reply = await client.chat_postMessage(channel="C123", text="done", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    # A reply to a reply joins the parent's thread, as in Slack.
    nested = await client.chat_postMessage(channel="C123", text="more", thread_ts=reply["ts"])

    [top] = fake_slack.messages["C123"]
    assert top.ts == parent["ts"]
    assert [(r.ts, r.text, r.thread_ts) for r in top.replies] == [
        (reply["ts"], "done", parent["ts"]),
        (nested["ts"], "more", parent["ts"]),
    ]
    assert fake_slack.thread("C123", parent["ts"]) == list(top.replies)
    got = fake_slack.message("C123", reply["ts"])
    assert got is not None
    assert got.text == "done"

    await client.chat_update(channel="C123", ts=reply["ts"], text="done!")
    assert fake_slack.thread("C123", parent["ts"])[0].text == "done!"

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C123", text="x", thread_ts="1714557600.999999")
    assert raised.value.response["error"] == "thread_not_found"


async def test_ephemeral_is_recorded(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.chat_postEphemeral(
        channel="C123", user="U9", text="You may not approve this", blocks=DONE
    )
    assert resp["ok"] is True
    assert TS.match(resp["message_ts"])
    [eph] = fake_slack.ephemerals
    assert (eph.channel, eph.user, eph.text, eph.blocks, eph.message_ts) == (
        "C123",
        "U9",
        "You may not approve this",
        DONE,
        resp["message_ts"],
    )
    assert fake_slack.messages == {}  # ephemerals are not channel messages


async def test_usergroups_users_list(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.usergroups_users_list(usergroup="S1")
    assert resp["users"] == ["U1", "U2"]
    [call] = fake_slack.calls("usergroups.users.list")
    assert (call.http_method, call.params) == ("GET", {"usergroup": "S1"})

    fake_slack.usergroups["S2"] = ["U3"]
    assert (await client.usergroups_users_list(usergroup="S2"))["users"] == ["U3"]

    with pytest.raises(SlackApiError) as raised:
        await client.usergroups_users_list(usergroup="S404")
    assert raised.value.response["error"] == "no_such_subteam"


async def test_invalid_auth_and_not_authed(fake_slack: FakeSlack) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError) as raised:
        await wrong.chat_postMessage(channel="C123", text="hi")
    assert raised.value.response.status_code == 200  # Slack answers auth errors with 200
    assert raised.value.response["error"] == "invalid_auth"

    anonymous = AsyncWebClient(base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError) as raised:
        await anonymous.auth_test()
    assert raised.value.response["error"] == "not_authed"

    assert fake_slack.messages == {}
    assert [c.error for c in fake_slack.calls()] == ["invalid_auth", "not_authed"]
    assert fake_slack.calls()[0].token == "xoxb-wrong"


async def test_unknown_method(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.frobnicate", json={"channel": "C123"})
    assert raised.value.response.status_code == 404
    assert raised.value.response["error"] == "unknown_method"


async def test_ratelimited_raises_429_by_default(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C123", text="hi")
    response = raised.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "7"
    # No retry by default: one call, nothing stored.
    [call] = fake_slack.calls()
    assert (call.status, call.fault, call.error) == (429, "ratelimited", "ratelimited")
    assert fake_slack.messages == {}

    # The fault was one-shot.
    resp = await client.chat_postMessage(channel="C123", text="hi")
    assert resp["ok"] is True


async def test_ratelimited_is_retried_with_the_rate_limit_handler(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", retry_after=0)  # ratelimited, 429 by default
    retrying = AsyncWebClient(
        token=fake_slack.bot_token,
        base_url=fake_slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    resp = await retrying.chat_postMessage(channel="C123", text="hi")
    assert resp["ok"] is True
    assert [c.status for c in fake_slack.calls("chat.postMessage")] == [429, 200]
    assert len(fake_slack.messages["C123"]) == 1


async def test_other_injected_errors_answer_200_and_can_match_any_method(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.fail_next(error="channel_not_found", n=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            await client.auth_test()
        assert raised.value.response.status_code == 200
        assert raised.value.response["error"] == "channel_not_found"
    assert (await client.auth_test())["ok"] is True


async def test_applied_then_failed_post_still_stores_the_message(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.fail_next("chat.postMessage", error="internal_error", status=500, apply_first=True)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C123", text="hi")
    assert len(fake_slack.messages["C123"]) == 1
    assert fake_slack.calls()[0].fault == "apply_then_internal_error"


async def test_dropped_response_is_resent_by_the_default_client(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    # slack_sdk's default AsyncConnectionErrorRetryHandler retries ServerDisconnectedError
    # once: the post went through, its answer was lost, and it is posted again.
    fake_slack.drop_next("chat.postMessage", apply_first=True)
    resp = await client.chat_postMessage(channel="C123", text="hi")
    assert resp["ok"] is True
    assert [m.text for m in fake_slack.messages["C123"]] == ["hi", "hi"]
    assert [c.fault for c in fake_slack.calls()] == ["apply_then_drop", None]

    no_retry = AsyncWebClient(token="xoxb-test", base_url=fake_slack.api_url, retry_handlers=[])
    fake_slack.drop_next("chat.postMessage")
    with pytest.raises(aiohttp.ClientError):
        await no_retry.chat_postMessage(channel="C123", text="lost")
    assert len(fake_slack.messages["C123"]) == 2


async def test_latency(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    # Other methods are not slowed: a bound far below the latency, far above any pause
    # of a loaded machine.
    fake_slack.set_latency(10.0, "chat.postMessage")
    started = time.perf_counter()
    await client.auth_test()
    assert time.perf_counter() - started < 5.0
    fake_slack.set_latency(0.3, "chat.postMessage")
    started = time.perf_counter()
    await client.chat_postMessage(channel="C123", text="slow")
    assert time.perf_counter() - started >= 0.3


async def test_block_kit_limits_answer_invalid_blocks(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    bad = [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "x" * 76},
                }
            ],
        }
    ]
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C123", text="hi", blocks=bad)
    assert raised.value.response["error"] == "invalid_blocks"
    assert raised.value.response["errors"] == [
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"
    ]
    assert fake_slack.messages == {}
    assert validate_blocks(BLOCKS) == []
    too_many = [{"type": "actions", "elements": [{"type": "button"}] * 26}]
    assert validate_blocks(too_many) == [
        "must be a list of at most 25 items [json-pointer:/blocks/0/elements]"
    ]

    # (chat_postMessage without text warns - an error under filterwarnings=error - so the
    # raw api_call is used here.)
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.postMessage", json={"channel": "C123"})
    assert raised.value.response["error"] == "no_text"


async def test_web_client_helper_and_fixture_client(
    fake_slack: FakeSlack, fake_slack_client: AsyncWebClient
) -> None:
    await fake_slack_client.chat_postMessage(channel="C1", text="a")
    async with fake_slack.web_client() as other:
        await other.chat_postMessage(channel="C2", text="b")
    assert sorted(fake_slack.messages) == ["C1", "C2"]


async def test_clear(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C123", text="a")
    await client.chat_postEphemeral(channel="C123", user="U1", text="e")
    fake_slack.clear(keep_messages=True)
    assert (fake_slack.calls(), fake_slack.ephemerals) == ([], [])
    assert fake_slack.message("C123", posted["ts"]) is not None
    fake_slack.clear()
    assert fake_slack.messages == {}
    later = await client.chat_postMessage(channel="C123", text="b")
    assert float(later["ts"]) > float(posted["ts"])  # ts stay unique across clear()


async def test_channels_allow_list() -> None:
    fake = FakeSlack(channels=["C123"])
    async with fake.running():
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        await client.chat_postMessage(channel="C123", text="ok")
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C999", text="nope")
        assert raised.value.response["error"] == "channel_not_found"


# -- response URLs ------------------------------------------------------------------------


async def test_response_url_replace_delete_and_ephemeral(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C123", text="Remediate?", blocks=BLOCKS)
    url = fake_slack.response_url("C123", posted["ts"], user_id="U1")

    resp = await AsyncWebhookClient(url).send(text="Approved", blocks=DONE, replace_original=True)
    assert resp.status_code == 200
    msg = fake_slack.message("C123", posted["ts"])
    assert msg is not None
    assert (msg.text, msg.blocks, msg.edits) == ("Approved", DONE, 1)
    [call] = fake_slack.response_url_posts
    assert call.params == {"text": "Approved", "blocks": DONE, "replace_original": True}
    assert call.token is None

    await AsyncWebhookClient(url).send(text="only you can see this")
    [eph] = fake_slack.ephemerals
    assert (eph.user, eph.text, eph.via) == ("U1", "only you can see this", "response_url")

    await AsyncWebhookClient(url).send(text="for everyone", response_type="in_channel")
    assert [m.text for m in fake_slack.messages["C123"]] == ["Approved", "for everyone"]

    await AsyncWebhookClient(url).send(delete_original=True)
    assert fake_slack.message("C123", posted["ts"]) is None
    assert [m.text for m in fake_slack.deleted] == ["Approved"]


async def test_response_url_unminted_paths_are_recorded_and_faults_apply(
    fake_slack: FakeSlack,
) -> None:
    url = f"{fake_slack.url}/actions/T1/123/abc"
    resp = await AsyncWebhookClient(url).send(text="x", replace_original=True)
    assert resp.status_code == 200
    assert fake_slack.response_url_posts[0].path == "/actions/T1/123/abc"

    fake_slack.fail_next("response_url", error="internal_error", status=500)
    resp = await AsyncWebhookClient(url).send(text="y")
    assert resp.status_code == 500


async def test_response_url_max_uses() -> None:
    fake = FakeSlack(response_url_max_uses=1)
    async with fake.running():
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        posted = await client.chat_postMessage(channel="C123", text="x")
        url = fake.response_url("C123", posted["ts"])
        first = await AsyncWebhookClient(url).send(text="a", replace_original=True)
        second = await AsyncWebhookClient(url).send(text="b", replace_original=True)
        assert (first.status_code, second.status_code) == (200, 404)
        assert json.loads(second.body)["error"] == "used_url"


# -- interaction requests -----------------------------------------------------------------


def test_block_action_payload_has_the_slack_fields() -> None:
    payload = block_action_payload(
        user_id="U1",
        action_id="approve",
        value="req-7f3a",
        message_ts="1714557600.000100",
        block_id="rem-7f3a",
        response_url="https://hooks.slack.com/actions/T1/1/x",
    )
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U1", "username": "alice", "name": "alice", "team_id": "T1"}
    assert payload["team"] == {"id": "T1", "domain": "acme"}
    assert payload["api_app_id"] == "A1"
    assert payload["trigger_id"]
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1714557600.000100",
        "channel_id": "C123",
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": "C123", "name": "ops"}
    assert payload["message"]["ts"] == "1714557600.000100"
    assert payload["message"]["blocks"][0]["block_id"] == "rem-7f3a"
    assert payload["response_url"] == "https://hooks.slack.com/actions/T1/1/x"
    [action] = payload["actions"]
    assert {k: action[k] for k in ("type", "action_id", "block_id", "value")} == {
        "type": "button",
        "action_id": "approve",
        "block_id": "rem-7f3a",
        "value": "req-7f3a",
    }
    assert re.match(r"^\d{10}\.\d{6}$", action["action_ts"])

    org_wide = block_action_payload(user_id="U1", action_id="a", value="v", team_id=None)
    assert org_wide["team"] is None


def test_form_body_is_payload_urlencoded_json() -> None:
    payload = block_action_payload(user_id="U1", action_id="approve", value="a b&c=d/é")
    body = form_body(payload)
    assert body.startswith(b"payload=%7B%22type%22%3A%22block_actions%22")
    assert b" " not in body
    assert b"&" not in body
    assert parse_form_body(body) == payload


def test_signature_matches_slack_documentation_example() -> None:
    # The worked example of docs.slack.dev "Verifying requests from Slack".
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert signature(body, "8f742231b10e8888abcd99yyyzzz85a5", 1531420618) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_sign_is_accepted_by_slack_sdk_signature_verifier() -> None:
    body = form_body(block_action_payload(user_id="U1", action_id="approve", value="req-7f3a"))
    headers = sign(body, SECRET)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert abs(int(headers["X-Slack-Request-Timestamp"]) - time.time()) < 5

    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert verifier.is_valid_request(body, {k.lower(): v for k, v in headers.items()})
    assert not verifier.is_valid_request(body + b"x", headers)  # tampered body
    assert not verifier.is_valid_request(body.replace(b"approve", b"APPROVE"), headers)
    assert not SignatureVerifier("wrong-secret").is_valid_request(body, headers)

    old = sign(body, SECRET, timestamp=int(time.time()) - 301)  # older than 5 minutes
    assert not verifier.is_valid_request(body, old)
    recent = sign(body, SECRET, timestamp=int(time.time()) - 240)
    assert verifier.is_valid_request(body, recent)


async def test_click_posts_a_signed_interaction_and_the_server_updates_via_response_url(
    fake_slack: FakeSlack, client: AsyncWebClient, aiohttp_server: ServerFactory
) -> None:
    """The whole loop: our (toy) server acks within 3 s, then updates via response_url."""
    received: list[dict[str, Any]] = []
    background: set[asyncio.Task[Any]] = set()

    async def update(response_url: str, user: str) -> None:
        await AsyncWebhookClient(response_url).send(
            text=f"Approved by {user}", blocks=DONE, replace_original=True
        )

    async def interactions(request: web.Request) -> web.Response:
        body = await request.read()
        if not SignatureVerifier(SECRET).is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        payload = parse_form_body(body)
        received.append(payload)
        task = asyncio.create_task(update(payload["response_url"], payload["user"]["id"]))
        background.add(task)
        task.add_done_callback(background.discard)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/slack/interactions", interactions)
    server = await aiohttp_server(app)
    url = str(server.make_url("/slack/interactions"))

    posted = await client.chat_postMessage(channel="C123", text="Remediate?", blocks=BLOCKS)
    forged = await fake_slack.click(url, "C123", posted["ts"], "reject", secret="not-the-secret")
    assert forged.status == 401
    stale = await fake_slack.click(
        url, "C123", posted["ts"], "approve", timestamp=int(time.time()) - 600
    )
    assert stale.status == 401
    assert received == []

    result = await fake_slack.click(url, "C123", posted["ts"], "approve", user_id="U1")
    assert result.status == 200
    assert result.elapsed < 3.0
    [payload] = received
    assert payload == result.payload
    assert payload["actions"][0]["value"] == "req-7f3a"
    assert payload["actions"][0]["block_id"] == "rem-7f3a"
    assert payload["container"]["message_ts"] == posted["ts"]
    assert payload["message"]["blocks"] == BLOCKS

    def replaced() -> bool:
        msg = fake_slack.message("C123", posted["ts"])
        return msg is not None and msg.blocks == DONE

    await fake_slack.wait_for(replaced)
    assert fake_slack.message("C123", posted["ts"]).text == "Approved by U1"  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        fake_slack.interaction("C123", posted["ts"], "no-such-action")
    body, headers = signed_request(result.payload, SECRET)
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
