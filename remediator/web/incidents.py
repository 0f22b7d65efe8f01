"""``GET /api/v1/incidents`` and ``GET /api/v1/incidents/{id}``: the timeline as JSON."""

from __future__ import annotations

import re

from aiohttp import web

from remediator.keys import ENGINE
from remediator.models.events import IncidentStatus
from remediator.models.ids import ID_PATTERN
from remediator.store import timeline
from remediator.store.timeline import IncidentFilter
from remediator.web.errors import error

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
FILTERS = ("status", "runbook", "namespace", "alertname", "team")
_DIGITS = re.compile(r"[0-9]{1,4}")


async def list_incidents(request: web.Request) -> web.Response:
    query = request.query
    unknown = sorted(set(query) - {*FILTERS, "limit", "cursor"})
    if unknown:
        return error(400, f"unknown query parameter {unknown[0]!r}", unknown[0])
    repeated = sorted(name for name in set(query) if len(query.getall(name)) > 1)
    if repeated:
        return error(400, f"query parameter {repeated[0]!r} given more than once", repeated[0])
    cursor = query.get("cursor") or None
    if cursor is not None and not ID_PATTERN.fullmatch(cursor):
        return error(400, "cursor must be a next_cursor value from a previous page", "cursor")
    status = query.get("status")
    if status is not None and status not in set(IncidentStatus):
        return error(400, f"status must be one of {', '.join(IncidentStatus)}", "status")
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    # str.isdigit() accepts '²' and other digits int() refuses: match ASCII digits only.
    if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return error(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    where = IncidentFilter(**{name: query.get(name) or None for name in FILTERS})
    page = await timeline.list_incidents(request.app[ENGINE], where, int(raw_limit), cursor)
    return web.json_response(text=page.model_dump_json())


async def get_incident(request: web.Request) -> web.Response:
    incident_id = request.match_info["incident_id"]
    if not ID_PATTERN.fullmatch(incident_id):
        return error(404, f"no incident {incident_id!r}")
    detail = await timeline.get_incident(request.app[ENGINE], incident_id)
    if detail is None:
        return error(404, f"no incident {incident_id!r}")
    return web.json_response(text=detail.model_dump_json())
