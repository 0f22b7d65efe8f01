"""JSON error responses that name what was wrong."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError


def error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def undecodable(exc: web.RequestPayloadError) -> web.Response:
    """400 for a body aiohttp could not decode, such as broken gzip: the client's fault."""
    cause = exc.__cause__  # aiohttp's parser error, whose message names the encoding
    detail = cause.message if isinstance(cause, HttpProcessingError) else str(exc)
    response = error(400, f"body could not be decoded: {detail}")
    response.force_close()  # the rest of the stream is unreadable, so the connection is spent
    return response
