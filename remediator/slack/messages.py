"""The Block Kit messages on-call reads at 3 a.m.: what fired, exactly what will change,
who may approve, until when, and the Approve / Reject buttons.

Button values carry only the opaque approval id. Texts are cut to Slack's limits so a
long description can never make Slack refuse the whole message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from remediator.slack.client import Blocks

SECTION_LIMIT = 3000
CONFIRM_TEXT_LIMIT = 300


@dataclass(frozen=True)
class ApprovalView:
    id: str
    alertname: str
    severity: str
    summary: str
    target: str
    runbook: str
    changes: tuple[str, ...]
    approvers: tuple[str, ...]  # Slack user ids
    min_approvals: int
    expires_at: datetime
    reason: str
    context: str = ""  # one line: the target's state when the incident opened
    incident_url: str | None = None


def request(view: ApprovalView, votes: tuple[str, ...] = ()) -> tuple[str, Blocks]:
    """The approval request, with buttons; ``votes`` are approvals so far."""
    blocks = _facts(view)
    if votes:
        blocks.append(_context(f"{len(votes)} of {view.min_approvals} approvals: {_people(votes)}"))
    confirm = _cut("\n".join(view.changes), CONFIRM_TEXT_LIMIT)
    blocks.append(
        ActionsBlock(
            block_id=f"approval-{view.id}",
            elements=[
                ButtonElement(
                    text="Approve",
                    action_id="approve",
                    value=view.id,
                    style="primary",
                    confirm=ConfirmObject(
                        title="Approve these changes?",
                        text=confirm,
                        confirm="Approve",
                        deny="Cancel",
                    ),
                ),
                ButtonElement(text="Reject", action_id="reject", value=view.id, style="danger"),
            ],
        )
    )
    return _fallback(view), _dicts(blocks)


def outcome(view: ApprovalView, result: str) -> tuple[str, Blocks]:
    """The request as it ends: no buttons, the outcome in their place."""
    blocks = _facts(view)
    blocks.append(SectionBlock(text=MarkdownTextObject(text=_cut(result, SECTION_LIMIT))))
    return f"{_fallback(view)}: {result}", _dicts(blocks)


def notice(lines: list[str]) -> Blocks:
    """A plain notification: its lines as one section (context and link included)."""
    return _dicts(
        [SectionBlock(text=MarkdownTextObject(text=_cut("\n".join(lines), SECTION_LIMIT)))]
    )


def _facts(view: ApprovalView) -> list[Block]:
    head = f"*{view.alertname}*" + (f" ({view.severity})" if view.severity else "")
    head += f" on {view.target}"
    if view.summary:
        head += f"\n{view.summary}"
    changes = "\n".join(f"• {c}" for c in view.changes)
    who = _people(view.approvers) or "nobody configured"
    need = (
        f" ({view.min_approvals} different people must approve)" if view.min_approvals > 1 else ""
    )
    expires = int(view.expires_at.timestamp())
    when = f"<!date^{expires}^{{date_short_pretty}} {{time}}|{view.expires_at.isoformat()}>"
    lines = [
        f"Runbook `{view.runbook}` wants to act ({view.reason}). It will:",
        changes,
        f"Who may approve: {who}{need}",
        f"Expires: {when}",
    ]
    if view.context:
        lines.append(f"Context: {view.context}")
    if view.incident_url:
        lines.append(f"<{view.incident_url}|Incident timeline>")
    return [
        SectionBlock(text=MarkdownTextObject(text=_cut(head, SECTION_LIMIT))),
        SectionBlock(text=MarkdownTextObject(text=_cut("\n".join(lines), SECTION_LIMIT))),
    ]


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=_cut(text, SECTION_LIMIT))])


def _fallback(view: ApprovalView) -> str:
    return f"Approve remediation of {view.alertname} on {view.target}?"


def _people(ids: tuple[str, ...]) -> str:
    return ", ".join(f"<@{i}>" for i in ids)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dicts(blocks: list[Block]) -> Blocks:
    return [b.to_dict() for b in blocks]
