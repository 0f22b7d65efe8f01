"""``GET /incidents`` and ``GET /incidents/{id}``: the timeline as server-rendered HTML.

Everything an alert, a label, a log line or a Kubernetes event carries is hostile text:
the templates autoescape it, a link gets an ``href`` only when it is an http(s) URL, and
the pages forbid scripts outright (Content-Security-Policy) as a second line.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from remediator.keys import ENGINE, SETTINGS
from remediator.models.events import EventKind, IncidentStatus
from remediator.models.ids import ID_PATTERN
from remediator.models.incident import IncidentDetail
from remediator.store import timeline
from remediator.web.query import BadQuery, parse_query

_APPROVAL_KINDS = frozenset(
    {
        EventKind.APPROVAL_REQUESTED,
        EventKind.APPROVED,
        EventKind.REJECTED,
        EventKind.APPROVAL_DENIED,
        EventKind.APPROVAL_EXPIRED,
    }
)
# How the timeline marks an event: went wrong, went right, or waits on something.
TONES = {
    **dict.fromkeys(
        (
            EventKind.BLOCKED,
            EventKind.FAILED,
            EventKind.VERIFICATION_FAILED,
            EventKind.CIRCUIT_OPENED,
            EventKind.REJECTED,
            EventKind.APPROVAL_DENIED,
            EventKind.APPROVAL_EXPIRED,
        ),
        "bad",
    ),
    **dict.fromkeys(
        (
            EventKind.EXECUTED,
            EventKind.VERIFIED,
            EventKind.APPROVED,
            EventKind.RESOLVED,
            EventKind.CIRCUIT_CLOSED,
        ),
        "good",
    ),
    **dict.fromkeys(
        (EventKind.DRY_RUN, EventKind.APPROVAL_REQUESTED, EventKind.SKIPPED, EventKind.CANCELLED),
        "warn",
    ),
}


def href(value: object) -> str | None:
    """``value`` when it is an absolute http(s) URL fit for an ``href``, else None."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value.strip()


def alertmanager_url(external_url: str, labels: Mapping[str, str]) -> str | None:
    """Alertmanager's alert list filtered to exactly these labels."""
    base = external_url.rstrip("/")
    if not base:
        return None
    matchers = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return f"{base}/#/alerts?filter={quote('{' + matchers + '}', safe='')}"


def _when(value: object, precise: bool = False) -> str:
    """A datetime (or ISO text) as ``2025-05-01 10:00:00 UTC``; other text unchanged."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if precise:
        text += f".{value.microsecond // 1000:03d}"
    return text + " UTC"


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _pretty(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@functools.cache
def _environment() -> tuple[Environment, Markup, str]:
    """The template environment, the stylesheet and the CSP hash that allows exactly it."""
    loader = PackageLoader("remediator.web", "templates")
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=ChainableUndefined,  # snapshot sections may lack a field: show nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    env.filters["iso"] = _iso
    env.globals["href"] = href
    css, _, _ = loader.get_source(env, "style.css")
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return env, Markup(css), f"'sha256-{digest}'"  # noqa: S704 - our own stylesheet


def render(name: str, status: int = 200, **values: Any) -> web.Response:
    """Render template ``name`` as an HTML response that may run no script."""
    env, css, style_hash = _environment()
    html = env.get_template(name).render(css=css, **values)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(
        {
            "Content-Security-Policy": (
                f"default-src 'none'; style-src {style_hash}; img-src 'self'; "
                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
    )
    return response


def error_page(status: int, message: str, field: str | None = None) -> web.Response:
    """A small HTML page for 400/401/404 that names what was wrong."""
    titles = {400: "Bad request", 401: "Sign in", 404: "Not found"}
    return render(
        "error.html",
        status=status,
        title=titles.get(status, str(status)),
        message=message,
        field=field,
    )


async def incident_list(request: web.Request) -> web.Response:
    """The incidents, newest first, filtered by the query and paged by cursor."""
    try:
        query = parse_query(request.query, "cursor must come from an “Older” link")
    except BadQuery as exc:
        return error_page(400, exc.message, exc.field)
    page = await query.page(request.app[ENGINE])
    return render(
        "list.html",
        page=page,
        query=query,
        values=query.values,
        statuses=list(IncidentStatus),
        older=query.url(cursor=page.next_cursor) if page.next_cursor else None,
        newest=query.url(cursor=None) if query.cursor else None,
    )


async def incident_detail(request: web.Request) -> web.Response:
    """One incident: header, labels, the timeline in order, executions, context."""
    incident_id = request.match_info["incident_id"]
    found = (
        await timeline.get_incident(request.app[ENGINE], incident_id)
        if ID_PATTERN.fullmatch(incident_id)
        else None
    )
    if found is None:
        return error_page(404, f"no incident {incident_id!r}")
    return render(
        "detail.html",
        incident=found,
        runbooks=_runbooks(found, request.app[SETTINGS].runbooks.source_url),
        approval_kinds=_APPROVAL_KINDS,
        tones=TONES,
        alertmanager=href(alertmanager_url(found.external_url, found.labels)),
        prometheus=href(found.generator_url),
    )


def _runbooks(incident: IncidentDetail, source_url: str | None) -> list[dict[str, Any]]:
    """The runbooks that matched: name, version, file and commit, as ``matched`` recorded,
    with a link to the file at that commit when ``runbooks.source_url`` is set."""
    return [
        {**e.data, "name": e.runbook, "url": _source_link(source_url, e.data)}
        for e in incident.events
        if e.kind == EventKind.MATCHED
    ]


def _source_link(template: str | None, matched: Mapping[str, Any]) -> str | None:
    file, commit = matched.get("file"), matched.get("commit")
    if template is None or not isinstance(file, str) or not file:
        return None
    return href(
        template.replace("{file}", quote(file)).replace(
            "{commit}", quote(commit) if isinstance(commit, str) and commit else "HEAD"
        )
    )
