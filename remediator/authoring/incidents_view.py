"""``remediator incidents list|show``: the incident API's answers as readable tables.

Everything shown comes from alerts and the cluster (label values, log lines, event
messages), so it is always rendered as plain text: never as Rich markup, and with
control characters (terminal escape sequences) and bidirectional overrides made visible
instead of being sent to the terminal. Times are UTC.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.cells import cell_len
from rich.console import Group, JustifyMethod, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from remediator.models.events import EventKind, IncidentStatus
from remediator.models.incident import Execution, IncidentDetail, IncidentPage, TimelineEvent

NONE = "—"
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")

_STATUS_STYLE: dict[str, str] = {IncidentStatus.OPEN: "bold red", IncidentStatus.RESOLVED: "green"}
_KIND_STYLE: dict[str, str] = {
    EventKind.BLOCKED: "yellow",
    EventKind.FAILED: "bold red",
    EventKind.VERIFICATION_FAILED: "bold red",
    EventKind.CIRCUIT_OPENED: "bold red",
    EventKind.REJECTED: "red",
    EventKind.APPROVAL_EXPIRED: "red",
    EventKind.DRY_RUN: "cyan",
    EventKind.EXECUTED: "green",
    EventKind.VERIFIED: "bold green",
    EventKind.APPROVED: "green",
    EventKind.RESOLVED: "green",
    EventKind.CONTEXT: "dim",
}
_EXECUTION_STYLE = {"failed": "bold red", "verified": "bold green", "succeeded": "green"}


def clean(value: str) -> str:
    """``value`` with control characters except newlines, and bidi overrides, escaped."""

    def escape(char: str) -> str:
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    text = "".join(escape(c) if unicodedata.category(c) == "Cc" and c != "\n" else c for c in value)
    return _BIDI.sub(lambda m: escape(m.group()), text)


def _text(value: object, style: str = "") -> Text:
    shown = NONE if value is None or value == "" else str(value)
    return Text(clean(shown), style=style)


def when(value: datetime | None) -> str:
    if value is None:
        return NONE
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pairs(values: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(values.items())) or NONE


def incident_list(page: IncidentPage, width: int | None = None) -> RenderableType:
    """One row per incident, newest first, as the API lists them."""
    if not page.items:
        return Text("no incidents")
    columns = (
        Column("id", fixed=True),
        Column("status", fixed=True),
        Column("alertname"),
        Column("namespace", drop=2),
        Column("team", drop=3),
        Column("severity", drop=4),
        Column("started (UTC)", drop=1, fixed=True),
        Column("notifications", drop=5, justify="right"),
        Column("summary", rest=True),
    )
    rows = [
        [
            _text(item.id),
            _text(item.status, _STATUS_STYLE.get(item.status, "")),
            _text(item.alertname),
            _text(item.namespace),
            _text(item.team),
            _text(item.severity),
            _text(when(item.starts_at)),
            _text(item.notifications),
            _text(item.summary),
        ]
        for item in page.items
    ]
    return _table(columns, rows, width)


def incident_detail(detail: IncidentDetail, width: int | None = None) -> RenderableType:
    """The header, the timeline and the executions of one incident."""
    return Group(
        _header(detail), _timeline(detail.events, width), _executions(detail.executions, width)
    )


def _header(d: IncidentDetail) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    status = _text(d.status, _STATUS_STYLE.get(d.status, ""))
    if d.resolved_at is not None:
        status.append(f" at {when(d.resolved_at)}")
    rows: list[tuple[str, Text]] = [
        ("alertname", _text(d.alertname, "bold")),
        ("status", status),
        ("severity", _text(d.severity)),
        ("namespace", _text(d.namespace)),
        ("team", _text(d.team)),
        ("summary", _text(d.summary)),
        ("started", _text(when(d.starts_at))),
        ("received", _text(when(d.created_at))),
        ("notifications", _text(d.notifications)),
        ("labels", _text(_pairs(d.labels))),
        ("annotations", _text(_pairs(d.annotations))),
        ("generator", _text(d.generator_url)),
        ("fingerprint", _text(d.fingerprint)),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return Panel.fit(grid, title=Text(f"incident {clean(d.id)}"), title_align="left")


def _timeline(events: Sequence[TimelineEvent], width: int | None) -> RenderableType:
    columns = (
        Column("time (UTC)", fixed=True),
        Column("stage", drop=2, fixed=True),
        Column("kind", fixed=True),
        Column("runbook", drop=1),
        Column("reason"),
        Column("message", rest=True),
    )
    rows = [
        [
            _text(when(e.at)),
            _text(e.stage),
            _text(e.kind, _KIND_STYLE.get(e.kind, "")),
            _text(e.runbook),
            _text(e.reason),
            _text(e.message),
        ]
        for e in events
    ]
    notes = []
    if any(e.kind == EventKind.CONTEXT for e in events):
        notes.append("context: the snapshot's summary; its pods, logs, events and links: --json")
    return _table(columns, rows, width, title=f"timeline ({len(events)} events)", notes=notes)


def _executions(runs: Sequence[Execution], width: int | None) -> RenderableType:
    if not runs:
        return Text("no executions")
    columns = (
        Column("created (UTC)", fixed=True),
        Column("runbook"),
        Column("step", drop=3, justify="right", fixed=True),
        Column("action", fixed=True),
        Column("target"),
        Column("mode", drop=2, fixed=True),
        Column("status", fixed=True),
        Column("finished (UTC)", drop=1, fixed=True),
        Column("detail", rest=True),
    )
    rows = [
        [
            _text(when(x.created_at)),
            _text(f"{x.runbook}@{x.version}"),
            _text(x.step),
            _text(x.action),
            _text(x.target),
            _text("dry run" if x.dry_run else "live"),
            _text(x.status, _EXECUTION_STYLE.get(x.status, "")),
            _text(when(x.finished_at)),
            _text(x.detail),
        ]
        for x in runs
    ]
    return _table(columns, rows, width, title=f"executions ({len(runs)})")


@dataclass(frozen=True)
class Column:
    header: str
    drop: int = 0  # 0: always shown; when the width is short, the highest go first
    rest: bool = False  # takes the width that is left, wrapping its text
    fixed: bool = False  # ids, times, enum values: never wrapped
    justify: JustifyMethod = "left"


_GAP = 3  # between two columns: padding, the (blank) rule, padding
_REST_MIN = 24  # the width the wrapping column should keep at least


def _table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    width: int | None,
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> Table:
    """A table of ``rows``, leaving out the most droppable columns while they do not fit
    in ``width`` (None: no limit), and saying which it left out."""
    natural = [
        max(len(c.header), *(line_width(row[i]) for row in rows)) for i, c in enumerate(columns)
    ]

    def needed(keep: Sequence[int]) -> int:
        sizes = [min(natural[i], _REST_MIN) if columns[i].rest else natural[i] for i in keep]
        return sum(sizes) + _GAP * (len(keep) - 1)

    keep = list(range(len(columns)))
    for level in sorted({c.drop for c in columns if c.drop}, reverse=True):
        if width is None or needed(keep) <= width:
            break
        keep = [i for i in keep if columns[i].drop != level]
    hidden = [c.header for i, c in enumerate(columns) if i not in keep]
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    for i in keep:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            ratio=1 if column.rest else None,
            no_wrap=column.fixed,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    lines = list(notes)
    if hidden:
        lines.append(f"not shown for lack of width: {', '.join(hidden)} (all of it: --json)")
    if lines:
        table.caption = "\n".join(lines)
        table.caption_justify = "left"
    return table


def line_width(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.splitlines()), default=0)
