"""What the fake Slack records and stores: frozen snapshots handed to tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

#: Pseudo method name under which POSTs to a response URL are recorded.
RESPONSE_URL = "response_url"


@dataclass(frozen=True)
class Call:
    """One HTTP request to the fake, in arrival order.

    ``method`` is the Web API method (``"chat.postMessage"``), or :data:`RESPONSE_URL` for a
    POST to a response URL. ``params`` merges the query string, the form fields and the JSON
    body as the fake understood them: JSON-encoded ``blocks``/``attachments``/``metadata``
    form fields are decoded, and a ``token`` parameter is moved to :attr:`token`.
    """

    method: str
    params: Json
    http_method: str
    path: str
    content_type: str | None  # the media type, e.g. "application/json"
    token: str | None  # the bearer token (or ``token`` parameter) presented, if any
    status: int | None = None  # HTTP status answered; None: dropped or still in flight
    response: Json | None = None  # the JSON body answered
    fault: str | None = None  # the injected fault's label, e.g. "ratelimited"
    # time.perf_counter() at arrival; not part of equality.
    at: float = field(default_factory=time.perf_counter, compare=False)

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("error")


@dataclass(frozen=True)
class Message:
    """A message as currently stored (after every ``chat.update`` / ``replace_original``).

    ``replies`` holds a top-level message's thread replies (oldest first); a reply has
    ``thread_ts`` set to its parent's ``ts`` and no replies of its own.
    """

    channel: str
    ts: str
    text: str | None
    blocks: list[Json]
    user: str  # the bot user id that posted it
    thread_ts: str | None = None
    replies: tuple[Message, ...] = ()
    attachments: list[Json] | None = None
    metadata: Json | None = None
    edits: int = 0  # how many times it was replaced (chat.update or response_url)
    params: Json = field(default_factory=dict, compare=False)  # everything last posted

    def as_api(self, *, bot_id: str, app_id: str, team_id: str) -> Json:
        """The ``message`` object Slack returns for it."""
        body: Json = {
            "type": "message",
            "user": self.user,
            "bot_id": bot_id,
            "app_id": app_id,
            "team": team_id,
            "ts": self.ts,
            "text": self.text or "",
            "blocks": self.blocks,
        }
        if self.attachments is not None:
            body["attachments"] = self.attachments
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
            body["parent_user_id"] = self.user
        if self.replies:
            body["thread_ts"] = self.ts
            body["reply_count"] = len(self.replies)
            body["latest_reply"] = self.replies[-1].ts
        if self.edits:
            body["edited"] = {"user": self.user, "ts": self.ts}
        return body


@dataclass(frozen=True)
class Ephemeral:
    """An ephemeral message: from ``chat.postEphemeral`` or a response-URL post that was
    neither a replace/delete nor ``response_type: in_channel``."""

    channel: str
    user: str | None
    text: str | None
    blocks: list[Json]
    message_ts: str
    thread_ts: str | None = None
    via: str = "chat.postEphemeral"  # or RESPONSE_URL
