"""The incident list's query, shared by the JSON API and the pages: filters, the time
range, page size and cursor, each refused with a message naming the parameter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from multidict import MultiMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.models.events import IncidentStatus
from remediator.models.ids import ID_PATTERN
from remediator.models.incident import IncidentPage
from remediator.store import timeline
from remediator.store.timeline import IncidentFilter

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
FILTERS = ("status", "runbook", "namespace", "alertname", "team")
TIME_FILTERS = ("since", "until")
PARAMETERS = frozenset({*FILTERS, *TIME_FILTERS, "limit", "cursor"})
# str.isdigit() accepts '²' and other digits int() refuses: match ASCII digits only.
_DIGITS = re.compile(r"[0-9]{1,4}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadQuery(Exception):
    """A query parameter that can never be answered; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ListQuery:
    """A parsed ``/incidents`` query; ``values`` refill the form and carry into paging."""

    where: IncidentFilter
    since: datetime | None
    until: datetime | None
    limit: int
    cursor: str | None
    values: dict[str, str]

    async def page(self, engine: AsyncEngine) -> IncidentPage:
        """The page of incidents this query asks for."""
        return await timeline.list_incidents(
            engine, self.where, self.limit, self.cursor, since=self.since, until=self.until
        )

    def url(self, **changes: str | None) -> str:
        """``/incidents`` with the same filters and ``changes`` applied (None drops one)."""
        merged: dict[str, str | None] = {**self.values, **changes}
        kept = {k: v for k, v in merged.items() if v}
        return "/incidents" + (f"?{urlencode(kept)}" if kept else "")


def parse_query(query: MultiMapping[str], cursor_error: str) -> ListQuery:
    """The filters, page size and cursor of ``query``; raises BadQuery naming the field.

    ``cursor_error`` tells where a valid cursor comes from. An empty value means no filter.
    ``since``/``until`` take an ISO date or date and time (UTC unless it says otherwise);
    a date for ``until`` includes that whole day.
    """
    unknown = sorted(set(query) - PARAMETERS)
    if unknown:
        raise BadQuery(unknown[0], f"unknown query parameter {unknown[0]!r}")
    repeated = sorted(name for name in set(query) if len(query.getall(name)) > 1)
    if repeated:
        raise BadQuery(repeated[0], f"query parameter {repeated[0]!r} given more than once")
    values = {name: query[name].strip() for name in query if query[name].strip()}
    cursor = values.get("cursor")
    if cursor is not None and not ID_PATTERN.fullmatch(cursor):
        raise BadQuery("cursor", cursor_error)
    status = values.get("status")
    if status is not None and status not in set(IncidentStatus):
        raise BadQuery("status", f"status must be one of {', '.join(IncidentStatus)}")
    raw_limit = values.get("limit", str(DEFAULT_LIMIT))
    if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadQuery("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    since = _instant("since", values["since"]) if "since" in values else None
    until = _instant("until", values["until"]) if "until" in values else None
    if since is not None and until is not None and until <= since:
        raise BadQuery("until", "until must be later than since")
    where = IncidentFilter(**{name: values.get(name) for name in FILTERS})
    return ListQuery(where, since, until, int(raw_limit), cursor, values)


def _instant(name: str, text: str) -> datetime:
    """An aware UTC datetime; a bare date is its midnight, or the next one for ``until``."""
    try:
        if _DATE.fullmatch(text):
            start = datetime.combine(date.fromisoformat(text), time(), UTC)
            return start + timedelta(days=1) if name == "until" else start
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadQuery(
            name,
            f"{name} must be an ISO date or date and time, e.g. 2025-05-01 or 2025-05-01T10:00Z",
        ) from None
