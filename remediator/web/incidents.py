"""``GET /api/v1/incidents`` and ``GET /api/v1/incidents/{id}``: the timeline as JSON."""

from __future__ import annotations

from aiohttp import web

from remediator.keys import ENGINE
from remediator.models.ids import ID_PATTERN
from remediator.store import timeline
from remediator.web.errors import error
from remediator.web.query import BadQuery, parse_query

CURSOR_ERROR = "cursor must be a next_cursor value from a previous page"


async def list_incidents(request: web.Request) -> web.Response:
    try:
        query = parse_query(request.query, CURSOR_ERROR)
    except BadQuery as exc:
        return error(400, exc.message, exc.field)
    page = await query.page(request.app[ENGINE])
    return web.json_response(text=page.model_dump_json())


async def get_incident(request: web.Request) -> web.Response:
    incident_id = request.match_info["incident_id"]
    if not ID_PATTERN.fullmatch(incident_id):
        return error(404, f"no incident {incident_id!r}")
    detail = await timeline.get_incident(request.app[ENGINE], incident_id)
    if detail is None:
        return error(404, f"no incident {incident_id!r}")
    return web.json_response(text=detail.model_dump_json())
