"""JSON error responses that name what was wrong."""

from __future__ import annotations

from aiohttp import web


def error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)
