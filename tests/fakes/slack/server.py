""":class:`FakeSlack`: the public face of the fake Slack Web API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import aiohttp
from aiohttp import web

from .app import SlackHttpApp
from .blocks import find_action
from .interactions import block_action_payload, signed_request
from .models import RESPONSE_URL, Call, Ephemeral, Json, Message
from .state import ResponseTarget, Workspace

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

T = TypeVar("T")
CallList = list[Call]
DEFAULT_USERGROUPS: Mapping[str, list[str]] = {"S1": ["U1", "U2"]}
TS_START = 1714557600  # 2024-05-01T10:00:00Z; the first ts handed out is "1714557600.000100"


class FakeSlackError(AssertionError):
    """The fake itself failed (a bug in a handler) during the test."""


@dataclass
class Fault:
    """A scripted fault for the next ``remaining`` calls of ``method`` (None: any)."""

    method: str | None
    error: str
    status: int
    retry_after: int | None
    remaining: int = 1
    drop: bool = False
    apply_first: bool = False

    @property
    def label(self) -> str:
        what = "drop" if self.drop else self.error
        return f"apply_then_{what}" if self.apply_first else what

    def answer(self) -> tuple[int, Json, dict[str, str]]:
        headers: dict[str, str] = {}
        if self.retry_after is not None and (self.status == 429 or self.error == "ratelimited"):
            headers["Retry-After"] = str(self.retry_after)
        return self.status, {"ok": False, "error": self.error}, headers


@dataclass(frozen=True)
class ClickResult:
    """What our server answered to a simulated button click."""

    status: int
    text: str
    elapsed: float  # seconds from sending to the full answer (Slack allows 3)
    payload: Json  # the block_actions payload that was sent


class Recorder:
    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._offset = 0  # slots handed out before the last clear()

    def start(self, call: Call) -> int:
        self._calls.append(call)
        return self._offset + len(self._calls) - 1

    def finish(self, slot: int, status: int | None, body: Json | None, fault: str | None) -> None:
        index = slot - self._offset
        if 0 <= index < len(self._calls):
            self._calls[index] = dataclasses.replace(
                self._calls[index], status=status, response=body, fault=fault
            )

    @property
    def calls(self) -> CallList:
        return list(self._calls)

    def clear(self) -> None:
        self._offset += len(self._calls)
        self._calls = []


class FakeSlack:
    """An in-process Slack Web API on ``http://127.0.0.1:<port>/api/`` for the real
    ``slack_sdk`` clients, plus response URLs at ``/actions/...``::

        fake = FakeSlack(usergroups={"S1": ["U1", "U2"]})
        async with fake.running() as url:
            client = AsyncWebClient(token=fake.bot_token, base_url=f"{url}/api/")
            resp = await client.chat_postMessage(channel="C123", text="hi", blocks=[...])
            assert fake.message("C123", resp["ts"]).blocks == [...]

    ``usergroups`` defaults to ``{"S1": ["U1", "U2"]}`` and stays mutable
    (``fake.usergroups["S2"] = [...]``). With ``channels`` set, other channels answer
    ``channel_not_found``. ``validate_blocks`` checks Block Kit limits (``invalid_blocks``).
    """

    def __init__(
        self,
        bot_token: str = "xoxb-test",  # noqa: S107 - a fixed test credential
        signing_secret: str = "test-signing-secret",  # noqa: S107
        usergroups: Mapping[str, Iterable[str]] | None = None,
        *,
        channels: Iterable[str] | None = None,
        bot_user_id: str = "UBOT",
        bot_id: str = "B1",
        team_id: str = "T1",
        app_id: str = "A1",
        validate_blocks: bool = True,
        response_url_max_uses: int | None = None,
        ts_start: int = TS_START,
    ) -> None:
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        groups = DEFAULT_USERGROUPS if usergroups is None else usergroups
        self.workspace = Workspace(
            usergroups={k: list(v) for k, v in groups.items()},
            channels=channels,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            app_id=app_id,
            team_id=team_id,
            validate=validate_blocks,
            ts_start=ts_start,
        )
        self.response_url_max_uses = response_url_max_uses
        self.latency = 0.0  # seconds added to every request
        self.url: str | None = None
        self._method_latency: dict[str, float] = {}
        self._answer_delay: dict[str, float] = {}
        self._faults: list[Fault] = []
        self._recorder = Recorder()
        self._handlers = self.workspace.handlers()
        self._errors: list[BaseException] = []
        self._running = False
        self._response_ids = itertools.count(1)

    # -- configuration ------------------------------------------------------------------------

    @property
    def usergroups(self) -> dict[str, list[str]]:
        return self.workspace.usergroups

    @property
    def bot_user_id(self) -> str:
        return self.workspace.bot_user_id

    @property
    def team_id(self) -> str:
        return self.workspace.team_id

    @property
    def api_url(self) -> str:
        """``base_url`` for slack_sdk clients (with the trailing slash they need)."""
        return f"{self._require_url()}/api/"

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay every request (``method=None``) or one method's (``"response_url"`` for
        response URLs) by ``seconds``; per-method latency replaces the global one."""
        if method is None:
            self.latency = seconds
        else:
            self._method_latency[method] = seconds

    def _latency_for(self, method: str) -> float:
        return self._method_latency.get(method, self.latency)

    def delay_answer(self, method: str, seconds: float) -> None:
        """Apply ``method``'s calls at once but hold their answers ``seconds``: the window in
        which Slack shows a message whose ts the caller does not know yet."""
        self._answer_delay[method] = seconds

    # -- faults -------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str | None = None,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        *,
        n: int = 1,
        apply_first: bool = False,
    ) -> None:
        """Answer the next ``n`` calls of ``method`` (None: any; ``"response_url"`` for
        response URLs) with ``{"ok": false, "error": error}``. ``status`` defaults to 429 for
        ``ratelimited`` (sent with ``Retry-After: retry_after`` unless that is None) and to
        200 otherwise, as Slack answers API errors. With ``apply_first`` the call takes effect
        before its answer is replaced by the error."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        self._faults.append(Fault(method, error, status, retry_after, n, apply_first=apply_first))

    def drop_next(
        self, method: str | None = None, *, n: int = 1, apply_first: bool = False
    ) -> None:
        """Close the connection without answering the next ``n`` calls of ``method``. With
        ``apply_first`` the call takes effect first ("the response was lost")."""
        fault = Fault(method, "drop", 0, None, n, drop=True, apply_first=apply_first)
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self._faults:
            if fault.method is None or fault.method == method:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- recording and state ------------------------------------------------------------------

    def calls(self, method: str | None = None) -> CallList:
        """Recorded calls (all, or one Web API method's / ``"response_url"``), in order."""
        return [c for c in self._recorder.calls if method is None or c.method == method]

    @property
    def response_url_posts(self) -> CallList:
        return self.calls(RESPONSE_URL)

    @property
    def messages(self) -> dict[str, list[Message]]:
        """Channel -> its current top-level messages (oldest first), replies nested."""
        return self.workspace.messages()

    def message(self, channel: str, ts: str) -> Message | None:
        """The current message (top-level or thread reply) at ``ts``, or None."""
        return self.workspace.message(channel, ts)

    def thread(self, channel: str, ts: str) -> list[Message]:
        msg = self.message(channel, ts)
        return [] if msg is None else list(msg.replies)

    @property
    def ephemerals(self) -> list[Ephemeral]:
        return list(self.workspace.ephemerals)

    @property
    def deleted(self) -> list[Message]:
        """Messages removed by ``chat.delete`` or ``delete_original``, as last stored."""
        return list(self.workspace.deleted)

    def clear(self, *, keep_messages: bool = False) -> None:
        """Forget recorded calls, ephemerals, deletions and (unless ``keep_messages``) the
        messages and minted response URLs. Configuration and pending faults are kept."""
        self._recorder.clear()
        self.workspace.clear(keep_messages=keep_messages)

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01
    ) -> T:
        """Poll ``predicate`` (e.g. over :meth:`calls`) until it returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"fake slack: condition not met in {timeout}s: {value!r}")
            await asyncio.sleep(interval)

    # -- interactions (what Slack sends to our server) ----------------------------------------

    def response_url(self, channel: str, message_ts: str, user_id: str = "U1") -> str:
        """Mint a response URL on the fake for a message: POSTs with ``replace_original``
        replace it, ``delete_original`` deletes it, ``response_type: in_channel`` posts to
        its channel, anything else becomes an ephemeral for ``user_id``."""
        path = f"/actions/{self.team_id}/{next(self._response_ids)}/fake-{message_ts}"
        self.workspace.mint_response_url(path, ResponseTarget(channel, message_ts, user_id))
        return f"{self._require_url()}{path}"

    def interaction(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        user_id: str = "U1",
        username: str = "alice",
        org_wide: bool = False,
    ) -> Json:
        """The ``block_actions`` payload for ``user_id`` clicking the element ``action_id``
        of the stored message at ``ts``, with a fresh :meth:`response_url` for it.
        ``org_wide`` sends ``"team": null`` as org-wide installs do."""
        msg = self.message(channel, ts)
        if msg is None:
            raise KeyError(f"no message {channel}/{ts} in the fake")
        found = find_action(msg.blocks, action_id)
        if found is None:
            raise KeyError(f"message {channel}/{ts} has no element with action_id {action_id!r}")
        block_id, element = found
        text = element.get("text")
        return block_action_payload(
            user_id=user_id,
            action_id=action_id,
            value=str(element.get("value", "")),
            channel=channel,
            message_ts=ts,
            block_id=block_id or "",
            response_url=self.response_url(channel, ts, user_id),
            username=username,
            team_id=None if org_wide else self.team_id,
            api_app_id=self.workspace.app_id,
            blocks=msg.blocks,
            message_text=msg.text or "",
            bot_user_id=self.bot_user_id,
            action_type=str(element.get("type", "button")),
            action_text=text.get("text") if isinstance(text, dict) else None,
            style=element.get("style"),
        )

    async def click(
        self,
        request_url: str,
        channel: str,
        ts: str,
        action_id: str,
        *,
        user_id: str = "U1",
        username: str = "alice",
        timestamp: int | None = None,
        secret: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> ClickResult:
        """POST the signed :meth:`interaction` to our server at ``request_url`` the way
        Slack does and report its answer and how long it took."""
        payload = self.interaction(channel, ts, action_id, user_id=user_id, username=username)
        body, headers = signed_request(payload, secret or self.signing_secret, timestamp)
        own = session is None
        client = session or aiohttp.ClientSession()
        try:
            started = time.perf_counter()
            async with client.post(request_url, data=body, headers=headers) as resp:
                text = await resp.text()
                return ClickResult(resp.status, text, time.perf_counter() - started, payload)
        finally:
            if own:
                await client.close()

    # -- running ------------------------------------------------------------------------------

    def _require_url(self) -> str:
        if self.url is None:
            raise RuntimeError("start the fake first: async with fake.running(): ...")
        return self.url

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on ``http://127.0.0.1:<free port>``; yields that URL (the Web API is under
        ``/api/``). On exit, raises :class:`FakeSlackError` if a handler crashed."""
        if self._running:
            raise RuntimeError("FakeSlack is already running")
        self._running = True
        runner = web.AppRunner(
            SlackHttpApp(self).build(), access_log=None, handle_signals=False, shutdown_timeout=0.25
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield self.url
        finally:
            await runner.cleanup()
            self.url = None
            self._running = False
        if self._errors:
            raise FakeSlackError(f"the fake Slack failed: {self._errors!r}") from self._errors[0]

    @contextlib.asynccontextmanager
    async def web_client(self, **kwargs: object) -> AsyncIterator[AsyncWebClient]:
        """A real ``slack_sdk`` AsyncWebClient for the running fake, on its own aiohttp
        session that is closed afterwards. ``kwargs`` go to the client (e.g.
        ``retry_handlers``, ``token``)."""
        from slack_sdk.web.async_client import AsyncWebClient

        options: dict[str, object] = {"token": self.bot_token, "base_url": self.api_url}
        options.update(kwargs)
        async with aiohttp.ClientSession() as session:
            yield AsyncWebClient(session=session, **options)  # type: ignore[arg-type]
