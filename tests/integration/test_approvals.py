"""On-call approval: a Slack message with buttons, signed clicks, the API path, expiry.

The real slack_sdk client talks to the fake Slack Web API; clicks are signed the way
Slack signs them. Every forged or unauthorized request must change nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from typing import Any

import pytest

from remediator.app import create_app, utcnow
from remediator.settings import BreakerSettings, KubeSettings, Settings, SlackSettings
from tests.conftest import AUTH, TOKEN, Clock, eventually
from tests.fakes.kube import objects
from tests.fakes.slack.interactions import block_action_payload, signed_request
from tests.payloads import alert, crashloop_labels, notification

CHANNEL = "C123"
RUNBOOK = """\
name: crashloop
version: 3
owner: web-team
match: ['alertname="KubePodCrashLooping"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
steps:
  - action: restart
approval:
  required: REQUIRED
  approvers: {users: [U1], groups: [S1]}
  min_approvals: MIN
  ttl: TTL
verify: {timeout: 5s}
escalate:
  - action: notify
    params: {message: "nobody approved the restart of {{ labels.deployment }}"}
"""


def configure(
    settings: Settings,
    fake_kube,
    fake_slack,
    runbook_dir,
    *,
    min_approvals=1,
    ttl="30m",
    required=True,
    breaker: BreakerSettings | None = None,
) -> Settings:
    text = RUNBOOK.replace("MIN", str(min_approvals)).replace("TTL", ttl)
    (runbook_dir / "crashloop.yaml").write_text(text.replace("REQUIRED", str(required).lower()))
    for name in ("web", "api"):
        fake_kube.add(objects.deployment(name, "prod", replicas=2))
    fake_slack.usergroups["S1"] = ["U2", "U3"]
    guards = {"dry_run": False, **({"breaker": breaker} if breaker else {})}
    return settings.model_copy(
        update={
            "guards": settings.guards.model_copy(update=guards),
            "kube": KubeSettings(source="kubeconfig", kubeconfig=fake_kube.kubeconfig),
            "worker": settings.worker.model_copy(update={"verify_interval": 0.05}),
            "slack": SlackSettings(
                bot_token=fake_slack.bot_token,
                signing_secret=fake_slack.signing_secret,
                channel=CHANNEL,
                base_url=fake_slack.api_url,
                sweep_interval=0.1,
            ),
            "server": settings.server.model_copy(update={"external_url": "https://rem.example"}),
        }
    )


@pytest.fixture
def make(aiohttp_client, settings, fake_kube, fake_slack, runbook_dir):
    async def factory(clock: Clock | None = None, **kw: Any):
        app = create_app(
            configure(settings, fake_kube, fake_slack, runbook_dir, **kw), clock=clock or utcnow
        )
        return await aiohttp_client(app)

    return factory


async def post(client, *alerts) -> None:
    resp = await client.post("/api/v1/alerts", json=notification(*alerts), headers=AUTH)
    assert resp.status == 200


async def detail(client) -> dict[str, Any]:
    items = (await (await client.get("/api/v1/incidents", headers=AUTH)).json())["items"]
    return await (await client.get(f"/api/v1/incidents/{items[0]['id']}", headers=AUTH)).json()


def kinds(d: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in d["events"]]


async def until_kind(client, kind: str, timeout: float = 10) -> dict[str, Any]:
    async def probe():
        try:
            d = await detail(client)
        except (KeyError, IndexError):
            return None
        return d if kind in kinds(d) else None

    return await eventually(probe, timeout=timeout)


async def requested(client, fake_slack) -> tuple[str, str]:
    """Post the alert; wait for the Slack request. Returns (approval id, message ts)."""
    await post(client, alert())
    d = await until_kind(client, "approval_requested")
    approval_id = next(e for e in d["events"] if e["kind"] == "approval_requested")["data"][
        "approval_id"
    ]
    [message] = await fake_slack.wait_for(lambda: fake_slack.messages.get(CHANNEL))
    return approval_id, message.ts


def assert_approved_then_run(d: dict[str, Any]) -> None:
    after = kinds(d)[kinds(d).index("approval_requested") :]
    assert after[:4] == ["approval_requested", "approved", "executed", "verified"]


def buttons(message) -> list[dict[str, Any]]:
    return [el for b in message.blocks if b["type"] == "actions" for el in b["elements"]]


async def click(client, fake_slack, ts: str, action: str, user: str, **kw: Any):
    url = str(client.make_url("/slack/interactions"))
    return await fake_slack.click(url, CHANNEL, ts, action, user_id=user, **kw)


async def test_request_shows_what_will_change_and_who_may_approve(make, fake_slack, fake_kube):
    client = await make()
    approval_id, ts = await requested(client, fake_slack)
    message = fake_slack.message(CHANNEL, ts)
    text = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert "restart Deployment prod/web" in text
    assert "<@U1>, <@U2>, <@U3>" in text  # the user group resolved through the Web API
    assert "https://rem.example/incidents/" in text
    assert [(b["action_id"], b["value"]) for b in buttons(message)] == [
        ("approve", approval_id),
        ("reject", approval_id),
    ]
    assert "confirm" in buttons(message)[0]
    assert fake_kube.mutations() == []  # nothing happens before a person decides


async def test_approve_runs_the_runbook_and_reports_in_slack(make, fake_slack, fake_kube):
    client = await make()
    _, ts = await requested(client, fake_slack)
    result = await click(client, fake_slack, ts, "approve", "U2")
    assert (result.status, result.elapsed < 3) == (200, True)
    d = await until_kind(client, "verified")
    assert_approved_then_run(d)
    assert len(fake_kube.mutations("PATCH")) == 1
    message = await fake_slack.wait_for(
        lambda: (
            (m := fake_slack.message(CHANNEL, ts))
            and not buttons(m)
            and "verified" in str(m.blocks)
            and m
        )
    )
    updates = [str(c.params["blocks"]) for c in fake_slack.calls("chat.update")]
    assert "Approved by <@U2>" in updates[0]  # always before the run's own progress
    assert "verified" in updates[-1]
    assert "verified" in str(message.blocks)
    replies = [r.text for r in fake_slack.thread(CHANNEL, ts)]
    assert any(r.startswith("executed:") for r in replies)
    assert any(r.startswith("verified:") for r in replies)


async def test_reject_does_nothing_and_says_who(make, fake_slack, fake_kube):
    client = await make()
    _, ts = await requested(client, fake_slack)
    await click(client, fake_slack, ts, "reject", "U1")
    d = await until_kind(client, "rejected")
    assert "rejected by U1 via slack" in d["events"][-1]["message"]
    await fake_slack.wait_for(lambda: not buttons(fake_slack.message(CHANNEL, ts)))
    assert "Rejected by <@U1>" in str(fake_slack.message(CHANNEL, ts).blocks)
    await asyncio.sleep(0.2)
    assert fake_kube.mutations() == []


async def test_a_click_before_the_worker_knows_the_message_is_still_drawn(
    make, fake_slack, fake_kube
):
    # Slack shows the request a second before its answer (the message's ts) reaches the
    # worker; a click in that second must still take the buttons away.
    fake_slack.delay_answer("chat.postMessage", 1.0)
    client = await make()
    await post(client, alert())
    [message] = await fake_slack.wait_for(lambda: fake_slack.messages.get(CHANNEL))
    await until_kind(client, "approval_requested")
    await click(client, fake_slack, message.ts, "reject", "U1")
    await until_kind(client, "rejected")
    await fake_slack.wait_for(lambda: not buttons(fake_slack.message(CHANNEL, message.ts)))
    assert "Rejected by <@U1>" in str(fake_slack.message(CHANNEL, message.ts).blocks)
    assert fake_kube.mutations() == []


@pytest.mark.parametrize("forgery", ["secret", "stale"])
async def test_forged_or_replayed_clicks_change_nothing(make, fake_slack, fake_kube, forgery):
    client = await make()
    _, ts = await requested(client, fake_slack)
    before = await detail(client)
    kw = (
        {"secret": "not-the-secret"}
        if forgery == "secret"
        else {"timestamp": int(time.time()) - 600}
    )
    result = await click(client, fake_slack, ts, "approve", "U1", **kw)
    assert result.status == 401
    await asyncio.sleep(0.2)
    assert (await detail(client))["events"] == before["events"]
    assert fake_kube.mutations() == []
    assert fake_slack.calls("chat.update") == []


async def test_malformed_signed_payloads_are_refused_without_500(make, fake_slack):
    from tests.fakes.slack.interactions import sign

    client = await make()
    for body in (b"payload=not-json", b"nothing", b"payload=%7B%7D"):
        resp = await client.post(
            "/slack/interactions", data=body, headers=sign(body, fake_slack.signing_secret)
        )
        assert resp.status == 400


async def test_someone_not_listed_cannot_approve(make, fake_slack, fake_kube):
    client = await make()
    _, ts = await requested(client, fake_slack)
    await click(client, fake_slack, ts, "approve", "U9")
    d = await until_kind(client, "approval_denied")
    assert "U9 tried to approve via slack but is not an approver" in d["events"][-1]["message"]
    [ephemeral] = await fake_slack.wait_for(lambda: fake_slack.ephemerals)
    assert (ephemeral.user, ephemeral.text) == ("U9", "You are not an approver for this request.")
    assert buttons(fake_slack.message(CHANNEL, ts))  # still waiting for a real approver
    assert fake_kube.mutations() == []


async def test_concurrent_clicks_approve_once(make, fake_slack, fake_kube):
    client = await make()
    _, ts = await requested(client, fake_slack)
    await asyncio.gather(
        *(click(client, fake_slack, ts, "approve", u) for u in ("U1", "U2", "U1", "U3"))
    )
    d = await until_kind(client, "verified")
    assert kinds(d).count("approved") == 1
    assert len(fake_kube.mutations("PATCH")) == 1


async def test_two_different_people_are_needed_when_asked(make, fake_slack, fake_kube):
    client = await make(min_approvals=2)
    _, ts = await requested(client, fake_slack)
    await click(client, fake_slack, ts, "approve", "U1")
    await click(client, fake_slack, ts, "approve", "U1")  # the same person twice
    await fake_slack.wait_for(
        lambda: "1 of 2 approvals" in str(fake_slack.message(CHANNEL, ts).blocks)
    )
    assert "approved" not in kinds(await detail(client))
    assert fake_kube.mutations() == []
    await click(client, fake_slack, ts, "approve", "U3")
    d = await until_kind(client, "approved")
    assert "approved by U1, U3 via slack" in next(
        e["message"] for e in d["events"] if e["kind"] == "approved"
    )


async def test_approval_after_the_alert_resolved_does_nothing(make, fake_slack, fake_kube):
    client = await make()
    _, ts = await requested(client, fake_slack)
    await post(client, alert(status="resolved", ends_at="2025-05-01T10:05:00Z"))
    await click(client, fake_slack, ts, "approve", "U1")
    d = await until_kind(client, "cancelled")
    assert "alert resolved before the runbook ran" in d["events"][-1]["message"]
    await fake_slack.wait_for(
        lambda: (
            "cancelled: approved, but the alert resolved"
            in str(fake_slack.message(CHANNEL, ts).blocks)
        )
    )
    assert fake_kube.mutations() == []


async def test_unanswered_request_expires_and_escalates(make, fake_slack, fake_kube):
    client = await make(ttl="1s")
    approval_id, ts = await requested(client, fake_slack)
    d = await until_kind(client, "approval_expired")
    d = await eventually(lambda: _escalated(client))
    assert d["events"][-1]["message"] == (
        "notified C123 about Deployment prod/web: nobody approved the restart of web"
    )
    assert "Deployment prod/web: nobody approved the restart of web" in [
        m.text for m in fake_slack.messages[CHANNEL]
    ]
    await fake_slack.wait_for(lambda: "Expired" in str(fake_slack.message(CHANNEL, ts).blocks))
    payload = block_action_payload(user_id="U1", action_id="approve", value=approval_id)
    body, headers = signed_request(payload, fake_slack.signing_secret)  # a click too late
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 200
    await fake_slack.wait_for(lambda: fake_slack.ephemerals)
    assert fake_kube.mutations() == []


async def test_a_request_left_unanswered_after_the_alert_resolved_escalates_nothing(
    make, fake_slack, fake_kube
):
    # The request expires only once the resolution is recorded, however slow the machine.
    clock = Clock()
    client = await make(ttl="30m", clock=clock)
    await requested(client, fake_slack)
    await post(client, alert(status="resolved", ends_at="2025-05-01T10:05:00Z"))
    await until_kind(client, "resolved")
    clock.advance(timedelta(minutes=31))
    d = await until_kind(client, "cancelled")
    assert d["events"][-1]["message"] == (
        "approval expired, but the alert has resolved; no escalation"
    )
    assert "approval_expired" in kinds(d)
    assert "executed" not in kinds(d)
    assert [m.text for m in fake_slack.messages[CHANNEL]][1:] == []  # the request only
    assert fake_kube.mutations() == []


async def _escalated(client):
    d = await detail(client)
    return d if kinds(d)[-1] == "executed" else None


async def test_the_api_path_follows_the_same_rules(make, fake_slack, fake_kube):
    client = await make()
    approval_id, _ = await requested(client, fake_slack)
    url = f"/api/v1/approvals/{approval_id}"
    assert (await client.post(f"{url}/approve", json={"by": "U1"})).status == 401
    resp = await client.post(f"{url}/approve", json={"by": "U9"}, headers=AUTH)
    assert resp.status == 403
    resp = await client.post(f"{url}/approve", json={}, headers=AUTH)
    assert (resp.status, (await resp.json())["field"]) == (400, "by")
    resp = await client.post(f"{url}/approve", json={"by": "U1"}, headers=AUTH)
    assert (resp.status, (await resp.json())["outcome"]) == (200, "approved")
    again = await client.post(f"{url}/reject", json={"by": "U2"}, headers=AUTH)
    assert again.status == 409
    state = await (await client.get(url, headers=AUTH)).json()
    assert (state["status"], state["decided_by"]) == ("approved", ["U1"])
    await until_kind(client, "verified")
    assert len(fake_kube.mutations("PATCH")) == 1
    assert (await client.get("/api/v1/approvals/000000000000000000000", headers=AUTH)).status == 404


async def cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_cli_approves_and_rejects_through_the_api(make, fake_slack, fake_kube):
    client = await make()
    approval_id, ts = await requested(client, fake_slack)
    base = str(client.make_url("")).rstrip("/")
    common = ("--url", base, "--token", TOKEN)
    assert await cli("approve", approval_id, "--by", "U9", *common) == (
        1,
        "not_approver: you are not an approver for this request\n",
    )
    assert await cli("reject", approval_id, "--by", "U2", *common) == (
        0,
        "rejected: rejected by U2\n",
    )
    code, out = await cli("approve", approval_id, "--by", "U1", *common)
    assert (code, out) == (1, f"not_pending: approval {approval_id} is already rejected\n")
    await fake_slack.wait_for(
        lambda: "Rejected by <@U2>" in str(fake_slack.message(CHANNEL, ts).blocks)
    )
    assert fake_kube.mutations() == []


async def test_an_open_breaker_falls_back_to_approval_and_the_approval_runs(
    make, fake_slack, fake_kube
):
    # No approval needed while the breaker is closed; once a second target opens it,
    # a person decides, and their approval is the decision: the breaker does not refuse it.
    client = await make(required=False, breaker=BreakerSettings(max_targets=1))
    await post(client, alert())
    await until_kind(client, "verified")
    assert len(fake_kube.mutations("PATCH")) == 1
    await post(client, alert(crashloop_labels(deployment="api", pod="api-1")))
    d = await until_kind(client, "approval_requested")
    assert kinds(d)[-3:] == ["circuit_opened", "blocked", "approval_requested"]
    message = await fake_slack.wait_for(
        lambda: (m := fake_slack.messages.get(CHANNEL)) and len(m) == 1 and m[0]
    )
    assert "circuit breaker is open" in str(message.blocks)
    await click(client, fake_slack, message.ts, "approve", "U1")
    d = await until_kind(client, "verified")
    assert_approved_then_run(d)
    [_, patched] = fake_kube.mutations("PATCH")
    assert "/deployments/api" in patched.path
