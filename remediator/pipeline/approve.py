"""Stage: ask a person before a runbook acts, and take their decision.

A request creates one pending approval per (incident, runbook), records
``approval_requested`` and posts the Slack message. Decisions (Slack buttons, the API or
the CLI) all go through ``decide``: only listed approvers count, a person's second click
is the same vote, and the approval moves out of ``pending`` with one conditional UPDATE,
so the first valid decision wins. An approval enqueues an ``approved`` job: the worker
re-checks that the alert still fires and that the guards still pass, then runs the
runbook through the same executor. Expiry is swept here too and escalates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remediator.models.alert import AlertInstance
from remediator.models.events import EventKind, Stage
from remediator.models.ids import new_id
from remediator.pipeline.plan import Plan
from remediator.pipeline.route import Router
from remediator.settings import SlackSettings
from remediator.slack import messages
from remediator.slack.client import Slack, SlackError
from remediator.store import approvals, jobs, timeline
from remediator.store.approvals import Approval
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Approver:
    """Where requests go and who may decide, as configured for the server."""

    settings: SlackSettings
    slack: Slack | None
    external_url: str
    clock: Callable[[], datetime]
    router: Router

    def incident_url(self, incident_id: str) -> str | None:
        base = self.external_url.rstrip("/")
        return f"{base}/incidents/{incident_id}" if base else None

    def can_ask(self, plan: Plan) -> bool:
        """Whether anybody is configured to approve this plan."""
        spec = plan.runbook.spec.approval.approvers
        return bool(self.router.approvers(plan.team, [*spec.users, *spec.groups]))

    async def people(self, plan: Plan) -> list[str]:
        """The user ids who may approve this plan, user groups resolved through Slack."""
        spec = plan.runbook.spec.approval.approvers
        ids = self.router.approvers(plan.team, [*spec.users, *spec.groups])
        users: list[str] = []
        for item in ids:
            if item.startswith("S"):
                if self.slack is None:
                    raise SlackError(f"user group {item} needs slack.bot_token to resolve")
                users.extend(await self.slack.group_members(item))
            else:
                users.append(item)
        return sorted(set(users))

    def view(self, approval: Approval, instance: AlertInstance | None) -> messages.ApprovalView:
        labels = instance.labels if instance else {}
        annotations = instance.annotations if instance else {}
        return messages.ApprovalView(
            id=approval.id,
            alertname=labels.get("alertname", ""),
            severity=labels.get("severity", ""),
            summary=annotations.get("summary", ""),
            target=approval.target,
            runbook=approval.runbook,
            changes=tuple(approval.changes),
            approvers=tuple(approval.approvers),
            min_approvals=approval.min_approvals,
            expires_at=approval.expires_at,
            reason=approval.reason,
            context=approval.summary,
            incident_url=self.incident_url(approval.incident_id),
        )


async def request(
    conn: AsyncConnection,
    approver: Approver,
    plan: Plan,
    instance: AlertInstance,
    reason: str,
    people: list[str],
    context: str = "",
) -> tuple[NewEvent, Approval | None]:
    """Create the pending approval; the caller posts it to Slack outside the transaction."""
    spec = plan.runbook.spec
    now = approver.clock()
    created = await approvals.create(
        conn,
        {
            "id": new_id(),
            "incident_id": instance.incident_id,
            "runbook": spec.name,
            "version": spec.version,
            "target": str(plan.target),
            "summary": context,
            "changes": [s.description for s in plan.steps],
            "reason": reason,
            "approvers": people,
            "min_approvals": spec.approval.min_approvals,
            "channel": approver.router.channel(plan.team, spec.approval.channel),
            "created_at": now,
            "expires_at": now + spec.approval.ttl,
        },
    )
    found = await approvals.find(conn, instance.incident_id, spec.name)
    assert found is not None
    if not created:
        return _event(
            EventKind.SKIPPED, f"approval {found.id} was already requested ({found.status})", found
        ), None
    who = ", ".join(people)
    need = f"{found.min_approvals} of " if found.min_approvals > 1 else "one of "
    return _event(
        EventKind.APPROVAL_REQUESTED,
        f"approval {found.id} requested ({reason}): {need}{who}; "
        f"expires {found.expires_at.isoformat(timespec='seconds')}",
        found,
    ), found


async def post(approver: Approver, approval: Approval, instance: AlertInstance) -> str | NewEvent:
    """Post the request to Slack: its ts, or an event saying why not (the API path remains)."""
    if approver.slack is None or not approval.channel:
        return _event(
            EventKind.SKIPPED,
            f"approval {approval.id} not posted: no Slack channel configured; decide with "
            f"`remediator approve {approval.id}` or the API",
            approval,
        )
    text, blocks = messages.request(approver.view(approval, instance))
    try:
        return await approver.slack.post(approval.channel, text, blocks)
    except SlackError as exc:
        log.warning("approval_post_failed", approval_id=approval.id, error=str(exc))
        return _event(
            EventKind.FAILED,
            f"could not post approval {approval.id} to Slack ({exc}); decide with "
            f"`remediator approve {approval.id}` or the API",
            approval,
        )


@dataclass(frozen=True)
class Outcome:
    """What a decision did, for the HTTP answer and the Slack message."""

    kind: str  # unknown | not_pending | expired | not_approver | recorded | approved | rejected
    message: str
    approval: Approval | None = None
    votes: tuple[str, ...] = ()


async def decide(
    engine: AsyncEngine, approval_id: str, user: str, decision: str, via: str, now: datetime
) -> Outcome:
    """Apply one person's ``approve`` or ``reject``, atomically."""
    async with engine.begin() as conn:
        approval = await approvals.get(conn, approval_id)
        if approval is None:
            return Outcome("unknown", f"no approval {approval_id}")
        if approval.status != "pending":
            return Outcome(
                "not_pending", f"approval {approval_id} is already {approval.status}", approval
            )
        if approval.expires_at <= now:
            return Outcome("expired", f"approval {approval_id} has expired", approval)
        if user not in approval.approvers:
            await _record(
                conn,
                approval,
                EventKind.APPROVAL_DENIED,
                f"{user} tried to {decision} via {via} but is not an approver",
                now,
                user,
            )
            return Outcome("not_approver", "you are not an approver for this request", approval)
        if decision == "reject":
            if not await approvals.settle(conn, approval.id, "rejected", [user], now):
                return Outcome("not_pending", "another decision came first", approval)
            await _record(
                conn, approval, EventKind.REJECTED, f"rejected by {user} via {via}", now, user
            )
            return Outcome(
                "rejected", f"rejected by {user}", await _reread(conn, approval), (user,)
            )
        await approvals.vote(conn, approval.id, user, "approve", now)
        votes = tuple(await approvals.approved_by(conn, approval.id))
        if len(votes) < approval.min_approvals:
            await _record(
                conn,
                approval,
                EventKind.SKIPPED,
                f"approval by {user} via {via} recorded: {len(votes)} of "
                f"{approval.min_approvals} needed",
                now,
                user,
            )
            return Outcome("recorded", f"{len(votes)} of {approval.min_approvals}", approval, votes)
        if not await approvals.settle(conn, approval.id, "approved", list(votes), now):
            return Outcome("not_pending", "another decision came first", approval)
        await _record(
            conn,
            approval,
            EventKind.APPROVED,
            f"approved by {', '.join(votes)} via {via}",
            now,
            user,
        )
        await _enqueue(conn, approval, "approved", now)
        settled = await _reread(conn, approval)
        return Outcome("approved", f"approved by {', '.join(votes)}", settled, votes)


async def expire_due(engine: AsyncEngine, now: datetime) -> list[Approval]:
    """Expire pending approvals whose time is up and queue their escalation."""
    expired: list[Approval] = []
    async with engine.begin() as conn:
        for approval in await approvals.due(conn, now):
            if await approvals.settle(conn, approval.id, "expired", [], now):
                await _record(
                    conn,
                    approval,
                    EventKind.APPROVAL_EXPIRED,
                    f"approval {approval.id} expired without a decision; escalating",
                    now,
                )
                await _enqueue(conn, approval, "escalate", now)
                expired.append(approval)
    return expired


async def refresh(
    engine: AsyncEngine,
    approver: Approver,
    approval: Approval,
    *,
    result: str | None = None,
    votes: tuple[str, ...] = (),
) -> None:
    """Redraw the Slack request: with the votes so far, or with ``result`` in place of
    the buttons. Best effort: a failure is logged, the decision stands."""
    if approver.slack is None or not approval.channel or not approval.message_ts:
        return
    async with engine.connect() as conn:
        instances = await timeline.load_instances(conn, [approval.incident_id])
    view = approver.view(approval, instances.get(approval.incident_id))
    text, blocks = (
        messages.outcome(view, result) if result is not None else messages.request(view, votes)
    )
    try:
        await approver.slack.update(approval.channel, approval.message_ts, text, blocks)
    except SlackError as exc:
        log.warning("approval_update_failed", approval_id=approval.id, error=str(exc))


async def show(engine: AsyncEngine, approver: Approver, outcome: Outcome) -> bool:
    """Redraw the Slack request after a decision: its votes so far, or a rejection.

    An approval is drawn by the worker that runs it, so it always comes before the run's
    own progress. False when the outcome changed nothing to show.
    """
    approval = outcome.approval
    if approval is None:
        return False
    if outcome.kind == "rejected":
        await refresh(engine, approver, approval, result=decided(approval))
    elif outcome.kind == "recorded":
        await refresh(engine, approver, approval, votes=outcome.votes)
    return outcome.kind in ("rejected", "recorded", "approved")


EXPIRED = ":hourglass: Expired without a decision; escalating."


def decided(approval: Approval) -> str:
    """The line that replaces the buttons once a decision is final."""
    people = ", ".join(f"<@{u}>" for u in approval.decided_by)
    if approval.status == "expired":
        return EXPIRED
    if approval.status == "approved":
        return f":white_check_mark: Approved by {people}; running now."
    return f":x: Rejected by {people}; nothing will be done."


async def reply(approver: Approver, approval: Approval, text: str) -> None:
    """Timeline progress in the thread under the request; best effort."""
    if approver.slack is None or not approval.channel or not approval.message_ts:
        return
    try:
        await approver.slack.post(approval.channel, text, thread=approval.message_ts)
    except SlackError as exc:
        log.warning("approval_reply_failed", approval_id=approval.id, error=str(exc))


async def _reread(conn: AsyncConnection, approval: Approval) -> Approval:
    found = await approvals.get(conn, approval.id)
    assert found is not None
    return found


async def _record(
    conn: AsyncConnection,
    approval: Approval,
    kind: EventKind,
    message: str,
    now: datetime,
    user: str | None = None,
) -> None:
    event = _event(kind, message, approval, user)
    await timeline.append(conn, [(approval.incident_id, event)], now)


async def _enqueue(conn: AsyncConnection, approval: Approval, kind: str, now: datetime) -> None:
    await jobs.enqueue(conn, approval.incident_id, kind, now, approval_id=approval.id)


def _event(kind: EventKind, message: str, approval: Approval, user: str | None = None) -> NewEvent:
    data: dict[str, object] = {"approval_id": approval.id}
    if user:
        data["user"] = user
    return NewEvent(Stage.APPROVE, kind, message, runbook=approval.runbook, data=data)


def pending_ids(written: Sequence[tuple[str, NewEvent]]) -> set[str]:
    """Incidents among ``written`` whose approval thread may want to hear of them."""
    return {i for i, e in written if e.kind in PROGRESS}


# What an approval's Slack thread hears of, and which of those end the story.
FINAL = frozenset(
    {
        EventKind.FAILED,
        EventKind.VERIFIED,
        EventKind.VERIFICATION_FAILED,
        EventKind.BLOCKED,  # the re-check after the decision refused it
        EventKind.CANCELLED,  # the alert resolved in between
    }
)
PROGRESS = FINAL | {EventKind.EXECUTED, EventKind.RECONCILED}
