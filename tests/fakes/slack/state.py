"""The workspace behind the fake: messages, threads, ephemerals, user groups, and the
Web API methods that act on them. No HTTP here; :mod:`.app` calls these with parsed params.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .blocks import validate_blocks
from .models import RESPONSE_URL, Ephemeral, Json, Message

MAX_TEXT = 40_000


class SlackError(Exception):
    """A Web API error answer: ``{"ok": false, "error": <error>, **extra}``."""

    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra

    def body(self) -> Json:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class _Stored:
    """A mutable stored message; tests only ever see :class:`Message` snapshots."""

    channel: str
    ts: str
    text: str | None
    blocks: list[Json]
    user: str
    thread_ts: str | None = None
    attachments: list[Json] | None = None
    metadata: Json | None = None
    edits: int = 0
    params: Json = field(default_factory=dict)
    replies: list[_Stored] = field(default_factory=list)

    def snapshot(self) -> Message:
        return Message(
            channel=self.channel,
            ts=self.ts,
            text=self.text,
            blocks=_copy(self.blocks),
            user=self.user,
            thread_ts=self.thread_ts,
            replies=tuple(r.snapshot() for r in self.replies),
            attachments=_copy(self.attachments),
            metadata=_copy(self.metadata),
            edits=self.edits,
            params=_copy(self.params),
        )


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)


@dataclass(frozen=True)
class ResponseTarget:
    """What a minted response URL points at."""

    channel: str
    message_ts: str
    user_id: str


@dataclass
class _ResponseUrlState:
    target: ResponseTarget
    uses: int = 0


class Workspace:
    def __init__(
        self,
        *,
        usergroups: dict[str, list[str]],
        channels: Iterable[str] | None,
        bot_user_id: str,
        bot_id: str,
        app_id: str,
        team_id: str,
        validate: bool,
        ts_start: int,
    ) -> None:
        self.usergroups = usergroups
        self.channels = None if channels is None else set(channels)
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_id = team_id
        self.validate = validate
        self._micros = ts_start * 1_000_000
        self._channels: dict[str, list[_Stored]] = {}
        self._index: dict[tuple[str, str], _Stored] = {}
        self.ephemerals: list[Ephemeral] = []
        self.deleted: list[Message] = []
        self.response_urls: dict[str, _ResponseUrlState] = {}

    # -- ts, lookup, snapshots --------------------------------------------------------------

    def next_ts(self) -> str:
        """Monotonic, unique ``"<seconds>.<6-digit micros>"``, 100 microseconds apart."""
        self._micros += 100
        seconds, micros = divmod(self._micros, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def messages(self) -> dict[str, list[Message]]:
        return {ch: [m.snapshot() for m in msgs] for ch, msgs in self._channels.items() if msgs}

    def message(self, channel: str, ts: str) -> Message | None:
        stored = self._index.get((channel, ts))
        return None if stored is None else stored.snapshot()

    def clear(self, *, keep_messages: bool) -> None:
        self.ephemerals.clear()
        self.deleted.clear()
        if not keep_messages:
            self._channels.clear()
            self._index.clear()
            self.response_urls.clear()

    def api_message(self, stored: _Stored) -> Json:
        return stored.snapshot().as_api(
            bot_id=self.bot_id, app_id=self.app_id, team_id=self.team_id
        )

    # -- parameter checks ---------------------------------------------------------------------

    def _channel(self, params: Json) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackError("channel_not_found")
        if self.channels is not None and channel not in self.channels:
            raise SlackError("channel_not_found")
        return channel

    def _blocks(self, params: Json, status: int = 200) -> list[Json] | None:
        if "blocks" not in params or params["blocks"] is None:
            return None
        blocks = params["blocks"]
        if isinstance(blocks, str):  # a form field that was not valid JSON
            raise SlackError("invalid_blocks_format", status)
        if self.validate:
            errors = validate_blocks(blocks)
            if errors:
                raise SlackError(
                    "invalid_blocks",
                    status,
                    errors=errors,
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )
        assert isinstance(blocks, list)
        return blocks

    def _text(self, params: Json) -> str | None:
        text = params.get("text")
        if text is None:
            return None
        text = str(text)
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        return text

    @staticmethod
    def _json_field(params: Json, key: str) -> Any:
        value = params.get(key)
        if isinstance(value, str):
            raise SlackError(f"invalid_{key}")
        return value

    def _find(self, channel: str, ts: Any) -> _Stored:
        stored = self._index.get((channel, ts)) if isinstance(ts, str) else None
        if stored is None:
            raise SlackError("message_not_found")
        return stored

    # -- Web API methods ----------------------------------------------------------------------

    def chat_post_message(self, params: Json) -> Json:
        channel = self._channel(params)
        text, blocks = self._text(params), self._blocks(params)
        attachments = self._json_field(params, "attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        parent: _Stored | None = None
        thread_ts = params.get("thread_ts")
        if thread_ts:
            parent = self._index.get((channel, str(thread_ts)))
            if parent is None:
                raise SlackError("thread_not_found")
            if parent.thread_ts is not None:  # a reply to a reply joins the parent thread
                parent = self._index[(channel, parent.thread_ts)]
        stored = _Stored(
            channel=channel,
            ts=self.next_ts(),
            text=text,
            blocks=blocks or [],
            user=self.bot_user_id,
            thread_ts=None if parent is None else parent.ts,
            attachments=attachments,
            metadata=self._json_field(params, "metadata"),
            params=_copy(params),
        )
        if parent is None:
            self._channels.setdefault(channel, []).append(stored)
        else:
            parent.replies.append(stored)
        self._index[(channel, stored.ts)] = stored
        return {
            "ok": True,
            "channel": channel,
            "ts": stored.ts,
            "message": self.api_message(stored),
        }

    def chat_update(self, params: Json) -> Json:
        channel = self._channel(params)
        stored = self._find(channel, params.get("ts"))
        text, blocks = self._text(params), self._blocks(params)
        # Slack keeps what an update leaves out; ``blocks: []`` removes the blocks.
        if "text" in params:
            stored.text = text
        if blocks is not None:
            stored.blocks = blocks
        if "attachments" in params:
            stored.attachments = self._json_field(params, "attachments")
        if "metadata" in params:
            stored.metadata = self._json_field(params, "metadata")
        if not stored.text and not stored.blocks and not stored.attachments:
            raise SlackError("no_text")
        stored.edits += 1
        stored.params = _copy(params)
        return {
            "ok": True,
            "channel": channel,
            "ts": stored.ts,
            "text": stored.text or "",
            "message": self.api_message(stored),
        }

    def chat_delete(self, params: Json) -> Json:
        channel = self._channel(params)
        stored = self._find(channel, params.get("ts"))
        self._remove(stored)
        return {"ok": True, "channel": channel, "ts": stored.ts}

    def _remove(self, stored: _Stored) -> None:
        self.deleted.append(stored.snapshot())
        if stored.thread_ts is None:
            self._channels[stored.channel].remove(stored)
            for reply in stored.replies:
                self._index.pop((reply.channel, reply.ts), None)
        else:
            self._index[(stored.channel, stored.thread_ts)].replies.remove(stored)
        del self._index[(stored.channel, stored.ts)]

    def chat_post_ephemeral(self, params: Json) -> Json:
        channel = self._channel(params)
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise SlackError("user_not_found")
        text, blocks = self._text(params), self._blocks(params)
        if not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        ts = self.next_ts()
        thread_ts = params.get("thread_ts")
        self.ephemerals.append(
            Ephemeral(
                channel=channel,
                user=user,
                text=text,
                blocks=blocks or [],
                message_ts=ts,
                thread_ts=None if thread_ts is None else str(thread_ts),
            )
        )
        return {"ok": True, "message_ts": ts}

    def usergroups_users_list(self, params: Json) -> Json:
        group = params.get("usergroup")
        if not isinstance(group, str) or group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(self.usergroups[group])}

    def auth_test(self, params: Json) -> Json:
        return {
            "ok": True,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "remediator",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    # -- response URLs ------------------------------------------------------------------------

    def mint_response_url(self, path: str, target: ResponseTarget) -> None:
        self.response_urls[path] = _ResponseUrlState(target)

    def respond(self, path: str, body: Any, max_uses: int | None) -> Json:
        """A POST to a response URL. Minted URLs act on their message; others are only
        recorded. Errors are HTTP 4xx (webhook style), not ``ok: false`` with 200."""
        if not isinstance(body, dict):
            raise SlackError("invalid_payload", 400)
        state = self.response_urls.get(path)
        if state is None:
            return {"ok": True}
        if max_uses is not None and state.uses >= max_uses:
            raise SlackError("used_url", 404)
        target = state.target
        if body.get("delete_original") in (True, "true"):
            self._remove(self._find_for_response(target))
        elif body.get("replace_original") in (True, "true"):
            stored = self._find_for_response(target)
            blocks = self._blocks(body, 400)
            text = self._text(body)
            if not text and not blocks:
                raise SlackError("no_text", 400)
            stored.text, stored.blocks = text, blocks or []
            stored.edits += 1
            stored.params = _copy(body)
        else:
            blocks = self._blocks(body, 400)
            text = self._text(body)
            if not text and not blocks:
                raise SlackError("no_text", 400)
            if body.get("response_type") == "in_channel":
                thread_ts = body.get("thread_ts")
                post: Json = {"channel": target.channel, "text": text, "blocks": blocks}
                if thread_ts:
                    post["thread_ts"] = thread_ts
                self.chat_post_message({k: v for k, v in post.items() if v is not None})
            else:
                self.ephemerals.append(
                    Ephemeral(
                        channel=target.channel,
                        user=target.user_id,
                        text=text,
                        blocks=blocks or [],
                        message_ts=self.next_ts(),
                        via=RESPONSE_URL,
                    )
                )
        state.uses += 1
        return {"ok": True}

    def _find_for_response(self, target: ResponseTarget) -> _Stored:
        try:
            return self._find(target.channel, target.message_ts)
        except SlackError as error:
            raise SlackError(error.error, 404) from None

    def handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "usergroups.users.list": self.usergroups_users_list,
        }
