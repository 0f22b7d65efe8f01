"""History benchmark: what the store's periodic and per-alert queries cost as it fills up.

SQLite runs every statement on the server's event loop. A query whose work grows with a
table therefore stops webhooks, actions and verification for as long, and the tables
grow for as long as retention keeps them (``retention.max_age``, 30 days): shadow mode
records a dry-run execution for every alert a runbook matches.

Two stores are built in one run, the same schema and the same mix of rows:

* baseline: a short history, ``--short`` incidents (default 1,000);
* subject: a long one, ``--long`` incidents (default 100,000: 30 days at ~3,300 a day).

Each incident has its alert, three timeline events (received, matched by one of 40
runbooks, dry run) and a finished work item; one in five has a dry-run execution of
runbook ``rb3`` (one busy runbook in shadow mode). All spread over 29 days, 30
namespaces and 700 targets. Then, on each store, ``--rounds`` times:

* a guard decision (``guard.decide``) for a dry-run restart by ``rb3``, which has a cooldown,
  ``max_runs`` and ``max_runs_per_namespace`` windows of 1 h and a namespace budget,
  in a transaction rolled back afterwards;
* the first page of the incident list (``timeline.list_incidents``), unfiltered;
* the same filtered on a runbook that matched one incident in 40;
* the same filtered on a runbook that never matched;
* the same filtered on a namespace (one incident in 30);
* the retention purge (``retention.purge``) when nothing is due.

Reported per query: p50 and max in ms on each store, and the ratio long / short. A
query that reads only what it returns keeps the ratio near 1 (an index lookup grows
with the logarithm of the table); a ratio near ``--long / --short`` means it reads the
whole history on every call.

    python bench/history.py [--short 1000] [--long 100000] [--rounds 20] [--json out.json]

The harness's smoke test: ``pytest bench/test_history.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from remediator.actions.registry import builtin_actions, mutating  # noqa: E402
from remediator.authoring.facts import sample_instance  # noqa: E402
from remediator.pipeline import guard  # noqa: E402
from remediator.pipeline.plan import plan  # noqa: E402
from remediator.runbooks.loader import load_file  # noqa: E402
from remediator.settings import GuardSettings  # noqa: E402
from remediator.store import retention, timeline  # noqa: E402
from remediator.store.db import create_engine, migrate  # noqa: E402
from remediator.store.timeline import IncidentFilter  # noqa: E402

RUNBOOKS = 40
NAMESPACES = 30
TARGETS = 700
DAYS = 29
RUNBOOK = """\
name: rb3
version: 1
owner: bench
match: ['alertname="Alert3"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.app }}"}
steps:
  - action: restart
guards:
  cooldown: 30m
  max_runs: {count: 100, window: 1h}
  max_runs_per_namespace: {count: 100, window: 1h}
"""
POLICY = {
    "dry_run": True,
    "namespaces": {"allow": ["*"], "max_runs": {"count": 100, "window": "1h"}},
    "kinds": {"allow": ["*"]},
}
Query = Callable[[], Awaitable[object]]


def fill(path: Path, count: int, now: datetime) -> None:
    """``count`` incidents of history, newest ``now``; raw SQLite for speed."""
    incidents, alerts, events, jobs, executions = [], [], [], [], []
    for i in range(count):
        at = (now - timedelta(days=DAYS * (count - i) / count)).replace(tzinfo=None)
        incident = f"{int(at.timestamp() * 1e6):013x}{i:08x}"
        runbook, namespace = f"rb{i % RUNBOOKS}", f"ns{i % NAMESPACES}"
        incidents.append(
            (incident, "resolved", f"Alert{i % RUNBOOKS}", namespace, "", "", "", "", at, at)
        )
        labels = json.dumps({"alertname": f"Alert{i % RUNBOOKS}", "namespace": namespace})
        alerts.append((f"a{incident}", incident, f"{i:016x}", at, "resolved", labels, at, at))
        for kind, name in (("received", None), ("matched", runbook), ("dry_run", runbook)):
            events.append((incident, at, kind, name))
        jobs.append((incident, at))
        if i % 5 == 0:
            target = f"Deployment/{namespace}/d{i % TARGETS}"
            executions.append((incident, "rb3", target, at, f"u{i}", namespace))
    db = sqlite3.connect(path)
    try:
        db.executemany(
            "INSERT INTO incidents (id, status, alertname, namespace, severity, summary,"
            " external_url, group_key, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            incidents,
        )
        db.executemany(
            "INSERT INTO alerts (id, incident_id, fingerprint, starts_at, status, labels,"
            " annotations, generator_url, notifications, first_seen, last_seen)"
            " VALUES (?,?,?,?,?,?,'{}','',1,?,?)",
            alerts,
        )
        db.executemany(
            "INSERT INTO events (incident_id, at, stage, kind, runbook, message, data)"
            " VALUES (?,?,'match',?,?,'','{}')",
            events,
        )
        db.executemany(
            "INSERT INTO jobs (incident_id, status, attempts, not_before, created_at)"
            " VALUES (?,'done',1,?,?)",
            [(incident, at, at) for incident, at in jobs],
        )
        db.executemany(
            "INSERT INTO executions (incident_id, runbook, version, step, action, target,"
            " dry_run, status, created_at, finished_at, detail, uid, namespace, params)"
            " VALUES (?,?,'1',0,'restart',?,1,'dry_run',?,NULL,'',?,?,'{}')",
            executions,
        )
        db.execute("UPDATE executions SET finished_at = created_at")
        db.commit()
    finally:
        db.close()


def queries(engine: Any, workdir: Path, now: datetime) -> dict[str, Query]:
    actions = builtin_actions()
    path = workdir / "rb3.yaml"
    path.write_text(RUNBOOK)
    planned = plan(
        load_file(path, actions),
        sample_instance({"alertname": "Alert3", "namespace": "ns3", "app": "d3"}),
        actions,
    )
    policy = GuardSettings.model_validate(POLICY)
    kinds = mutating(actions)

    async def decide() -> object:
        async with engine.connect() as conn, conn.begin() as tx:
            decision = await guard.decide(
                conn, "new", planned, planned.steps[0], policy, kinds, now
            )
            await tx.rollback()
        return decision

    def page(**filters: str) -> Query:
        where = IncidentFilter(**filters)
        return lambda: timeline.list_incidents(engine, where, 50, None)

    async def purge() -> object:
        return await retention.purge(engine, now - timedelta(days=30))

    return {
        "guard decision": decide,
        "incident list, first page": page(),
        "incident list, runbook with 1 in 40": page(runbook="rb3"),
        "incident list, runbook never matched": page(runbook="nope"),
        "incident list, namespace with 1 in 30": page(namespace="ns3"),
        "retention purge, none due": purge,
    }


async def measure(workdir: Path, count: int, rounds: int) -> dict[str, list[float]]:
    now = datetime.now(UTC)
    store = workdir / f"history-{count}.db"
    engine = create_engine(f"sqlite+aiosqlite:///{store}")
    try:
        await migrate(engine)
        fill(store, count, now)
        timings: dict[str, list[float]] = {}
        for name, query in queries(engine, workdir, now).items():
            await query()  # warm: statement cache, pages in memory
            times = timings.setdefault(name, [])
            for _ in range(rounds):
                started = time.perf_counter()
                await query()
                times.append((time.perf_counter() - started) * 1e3)
        return timings
    finally:
        await engine.dispose()


def report(short: int, long: int, results: dict[int, dict[str, list[float]]]) -> list[str]:
    lines = [
        f"store history: {short:,} incidents (baseline) against {long:,} (subject), SQLite",
        f"  {'query':40s} {'short p50':>10s} {'max':>8s} {'long p50':>10s} {'max':>9s} ratio",
    ]
    for name, fast in results[short].items():
        slow = results[long][name]
        a, b = statistics.median(fast), statistics.median(slow)
        lines.append(
            f"  {name:40s} {a:8.2f}ms {max(fast):6.2f}ms {b:8.2f}ms {max(slow):7.2f}ms"
            f" {b / a:5.1f}x"
        )
    lines.append(f"  (a query that reads the whole history each time shows ~{long / short:.0f}x)")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=1_000, help="baseline's incidents")
    parser.add_argument("--long", type=int, default=100_000, help="subject's incidents")
    parser.add_argument("--rounds", type=int, default=20, help="timed calls per query")
    parser.add_argument("--json", type=Path, help="write every timing here")
    args = parser.parse_args(argv)
    if not 0 < args.short < args.long or args.rounds < 1:
        parser.error("need 0 < --short < --long and --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="remediator-history-bench-") as tmp:
        results = {
            count: asyncio.run(measure(Path(tmp), count, args.rounds))
            for count in (args.short, args.long)
        }
    print("\n".join(report(args.short, args.long, results)))
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
