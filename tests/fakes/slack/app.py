"""The aiohttp application: parsing (query + form or JSON), auth, latency, fault injection,
recording, and dispatch to :class:`~.state.Workspace`.

Routes: ``/api/{method}`` (any HTTP method, as Slack accepts GET and POST) and
``POST /actions/{anything}`` (response URLs). Everything else answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from .models import RESPONSE_URL, Call, Json
from .state import SlackError

if TYPE_CHECKING:
    from .server import FakeSlack, Fault

# Form fields slack_sdk (and other clients) send JSON-encoded.
JSON_FIELDS = ("blocks", "attachments", "metadata", "user_auth_blocks")
FORM = "application/x-www-form-urlencoded"


class BadRequest(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def parse_params(query: dict[str, str], raw: bytes, media_type: str | None) -> Json:
    """Query string, then the body (JSON object or urlencoded form) on top."""
    params: Json = dict(query)
    if not raw:
        return params
    if media_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            raise BadRequest("invalid_json") from None
        if not isinstance(body, dict):
            raise BadRequest("invalid_json")
        params.update(body)
    elif media_type in (FORM, None):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("invalid_form_data") from None
        params.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
    else:
        raise BadRequest("invalid_form_data")  # e.g. multipart uploads: not supported here
    for key in JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str):
            # Left as a string if it is not JSON; the method then answers an error.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _answer(status: int, body: Json, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


class SlackHttpApp:
    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake

    def build(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self.api)
        app.router.add_post("/actions/{tail:.*}", self.response_url)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def not_found(self, request: web.Request) -> web.Response:
        return _answer(404, {"ok": False, "error": "not_found"})

    async def api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        return await self._handle(request, method, is_api=True)

    async def response_url(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, RESPONSE_URL, is_api=False)

    async def _handle(
        self, request: web.Request, method: str, *, is_api: bool
    ) -> web.StreamResponse:
        fake = self.fake
        raw = await request.read()
        media_type = request.content_type if request.headers.get(hdrs.CONTENT_TYPE) else None
        bad: BadRequest | None = None
        try:
            params = parse_params(dict(request.query.items()), raw, media_type)
        except BadRequest as error:
            params, bad = {"_raw": raw.decode("utf-8", errors="replace")}, error
        token = _bearer(request)
        if is_api and token is None and isinstance(params.get("token"), str):
            token = params["token"]
        if is_api:
            params.pop("token", None)
        call = Call(
            method=method,
            params=params,
            http_method=request.method,
            path=request.path,
            content_type=media_type,
            token=token if is_api else None,
        )
        slot = fake._recorder.start(call)
        status: int | None = None
        body: Json | None = None
        fault: Fault | None = None
        try:
            latency = fake._latency_for(method)
            if latency > 0:
                await asyncio.sleep(latency)
            if bad is not None:
                status, body = (200 if is_api else 400), {"ok": False, "error": bad.error}
                return _answer(status, body)
            if is_api and token is None:
                status, body = 200, {"ok": False, "error": "not_authed"}
                return _answer(status, body)
            if is_api and token != fake.bot_token:
                status, body = 200, {"ok": False, "error": "invalid_auth"}
                return _answer(status, body)
            if is_api and method not in fake._handlers:
                status, body = 404, {"ok": False, "error": "unknown_method", "req_method": method}
                return _answer(status, body)
            fault = fake._take_fault(method)
            if fault is not None and not fault.apply_first:
                if fault.drop:
                    return self._drop(request)
                status, body, headers = fault.answer()
                return _answer(status, body, headers)
            status, body = self._serve(method, request.path, params)
            held = fake._answer_delay.get(method, 0.0)
            if held > 0:
                await asyncio.sleep(held)
            if fault is not None:  # apply_first: the change happened, its answer is lost
                if fault.drop:
                    status, body = None, None
                    return self._drop(request)
                status, body, headers = fault.answer()
                return _answer(status, body, headers)
            return _answer(status, body)
        finally:
            fake._recorder.finish(slot, status, body, None if fault is None else fault.label)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)  # never reaches the client

    def _serve(self, method: str, path: str, params: Json) -> tuple[int, Json]:
        fake = self.fake
        try:
            if method == RESPONSE_URL:
                return 200, fake.workspace.respond(path, params, fake.response_url_max_uses)
            return 200, fake._handlers[method](params)
        except SlackError as error:
            return error.status, error.body()
        except Exception as exc:  # a bug in the fake: answer 500 and fail the test at exit
            fake._errors.append(exc)
            return 500, {"ok": False, "error": "fatal_error", "detail": repr(exc)}
