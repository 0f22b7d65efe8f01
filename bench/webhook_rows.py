"""What the webhook's durable write costs, against the same rows written by hand.

Each webhook request that brings three new alerts makes twelve rows: three alert
instances, three incidents, three ``received`` events and three work items, committed
with an fsync (``synchronous=FULL``), after a SELECT of the instances already known. This
measures the CPU that write takes per request, on two migrated stores in a temp dir, in
alternating rounds, with batches of requests committed together as under load:

* baseline: the same SELECT and the same rows written with plain ``sqlite3`` on this
  thread: hand-written SQL, ``executemany`` of tuples, one commit per batch. No
  framework can make these rows cheaper, so it is the floor under any webhook that
  stores them before answering, as the spine issue asks;
* subject: ``remediator.store.ingest.IngestWriter`` (SQLAlchemy Core on the loop's
  thread, the commit on aiosqlite's thread), awaited by one coroutine per request.

CPU is the whole process's (every thread), per request. The notifications are
validated once, before the clock starts, from bodies made by ``tests/payloads.py``
with labels and annotations like those ``bench/alerts.lua`` sends.

    python bench/webhook_rows.py [--requests 3000] [--batch 32] [--rounds 3]
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
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect  # noqa: E402

from remediator.models.alert import Notification  # noqa: E402
from remediator.models.ids import new_id  # noqa: E402
from remediator.store.db import create_engine, migrate  # noqa: E402
from remediator.store.ingest import IngestWriter  # noqa: E402
from remediator.store.tables import UTCDateTime  # noqa: E402
from tests import payloads  # noqa: E402

ALERTS_PER_BODY = 3
START = datetime.now(UTC) - timedelta(hours=1)


def notification(serial: int) -> Notification:
    """A body of three never-seen firing alerts (``tests/payloads.py``), validated."""
    namespace = ("payments", "checkout", "search")[serial % 3]
    deploy = f"api-{serial * 2654435 % 268435456:07x}"
    alerts = []
    for i in range(ALERTS_PER_BODY):
        n = serial * ALERTS_PER_BODY + i
        pod = f"{deploy}-{n % 100000:05d}"
        labels = payloads.crashloop_labels(
            namespace=namespace,
            deployment=deploy,
            pod=pod,
            container=("api", "worker", "sidecar")[i],
            instance=f"10.42.{n % 200}.{n // 200 % 250 + 2}:8080",
            job="kube-state-metrics",
        )
        annotations = {
            "description": f'Pod {namespace}/{pod} is in waiting state "CrashLoopBackOff".',
            "runbook_url": "https://runbooks.example.com/kubepodcrashlooping",
            "summary": "Pod is crash looping.",
        }
        starts_at = (START + timedelta(milliseconds=n)).isoformat()
        alerts.append(payloads.alert(labels, starts_at=starts_at, annotations=annotations))
    return Notification.model_validate(payloads.notification(*alerts))


_SQLITE = sqlite_dialect()


def stamp(value: datetime) -> str:
    """The store's SQLite form of a UTC time, made by the store's own type."""
    text: str = UTCDateTime().process_bind_param(value, _SQLITE)
    return text


KNOWN = "SELECT id, incident_id, fingerprint, starts_at, status FROM alerts WHERE fingerprint IN "
INCIDENT = (
    "INSERT INTO incidents (id, status, alertname, namespace, severity, summary, external_url,"
    " group_key, created_at, updated_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,NULL)"
)
ALERT = (
    "INSERT INTO alerts (id, incident_id, fingerprint, starts_at, ends_at, status, labels,"
    " annotations, generator_url, notifications, first_seen, last_seen)"
    " VALUES (?,?,?,?,NULL,?,?,?,?,1,?,?)"
)
EVENT = (
    "INSERT INTO events (incident_id, at, stage, kind, message, data)"
    " VALUES (?,?,'ingest','received',?,?)"
)
JOB = (
    "INSERT INTO jobs (incident_id, status, attempts, not_before, created_at)"
    " VALUES (?,'pending',0,?,?)"
)


def write_by_hand(db: sqlite3.Connection, batch: Sequence[Notification]) -> None:
    """The rows ``IngestWriter`` makes for ``batch`` of new firing alerts, by hand."""
    fingerprints = [a.fingerprint for n in batch for a in n.alerts]
    db.execute("BEGIN")
    known = db.execute(KNOWN + f"({','.join('?' * len(fingerprints))})", fingerprints).fetchall()
    assert not known, "every alert is new"
    now = stamp(datetime.now(UTC))
    incidents, alerts, events, jobs = [], [], [], []
    for n in batch:
        for a in n.alerts:
            incident, alert = new_id(), new_id()
            labels = a.labels
            incidents.append(
                (
                    incident,
                    "open",
                    labels.get("alertname", ""),
                    labels.get("namespace", ""),
                    labels.get("severity", ""),
                    a.annotations.get("summary", ""),
                    n.externalURL,
                    n.groupKey,
                    now,
                    now,
                )
            )
            alerts.append(
                (
                    alert,
                    incident,
                    a.fingerprint,
                    stamp(a.startsAt),
                    a.status,
                    json.dumps(labels),
                    json.dumps(a.annotations),
                    a.generatorURL,
                    now,
                    now,
                )
            )
            data = json.dumps({"fingerprint": a.fingerprint, "receiver": n.receiver})
            events.append((incident, now, f"{a.status} alert received", data))
            jobs.append((incident, now, now))
    db.executemany(INCIDENT, incidents)
    db.executemany(ALERT, alerts)
    db.executemany(EVENT, events)
    db.executemany(JOB, jobs)
    db.execute("COMMIT")


def by_hand(path: str, batches: Sequence[Sequence[Notification]]) -> float:
    """CPU µs per request."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            db.execute(f"PRAGMA {pragma}")
        cpu = time.process_time()
        for batch in batches:
            write_by_hand(db, batch)
        return (time.process_time() - cpu) / sum(map(len, batches)) * 1e6
    finally:
        db.close()


async def by_writer(url: str, batches: Sequence[Sequence[Notification]]) -> float:
    """CPU µs per request."""
    engine = create_engine(url)
    writer = IngestWriter(engine, lambda: datetime.now(UTC))
    writer.start()
    try:
        cpu = time.process_time()
        for batch in batches:
            results = await asyncio.gather(*(writer.write(n) for n in batch))
            assert all(r.received == ALERTS_PER_BODY for r in results), "every alert is new"
        return (time.process_time() - cpu) / sum(map(len, batches)) * 1e6
    finally:
        await writer.stop()
        await engine.dispose()


COUNTS = {t: f"SELECT count(*) FROM {t}" for t in ("incidents", "alerts", "events", "jobs")}  # noqa: S608


def rows_of(path: str) -> dict[str, int]:
    """Rows per table, to show both writers stored the same."""
    db = sqlite3.connect(path)
    try:
        return {table: db.execute(query).fetchone()[0] for table, query in COUNTS.items()}
    finally:
        db.close()


async def prepare(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per round (3000)")
    parser.add_argument("--batch", type=int, default=32, help="requests per commit (32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per writer (3)")
    args = parser.parse_args(argv)
    if min(args.requests, args.batch, args.rounds) < 1:
        parser.error("--requests, --batch and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, list[float]]:
    args = parse_args(argv)
    seen: dict[str, list[float]] = {"by hand": [], "remediator": []}
    serial = 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: f"{tmp}/{name.replace(' ', '_')}.db" for name in seen}
        for path in paths.values():
            asyncio.run(prepare(f"sqlite+aiosqlite:///{path}"))
        for _ in range(args.rounds):
            for name, path in paths.items():
                bodies = [notification(serial + i) for i in range(args.requests)]
                serial += args.requests
                batches = [bodies[i : i + args.batch] for i in range(0, len(bodies), args.batch)]
                if name == "by hand":
                    seen[name].append(by_hand(path, batches))
                else:
                    url = f"sqlite+aiosqlite:///{path}"
                    seen[name].append(asyncio.run(by_writer(url, batches)))
        stored = [rows_of(path) for path in paths.values()]
    if stored[0] != stored[1]:
        raise SystemExit(f"the writers stored different rows: {stored}")
    base, ours = (statistics.median(seen[name]) for name in seen)
    print(
        f"{args.requests} requests of {ALERTS_PER_BODY} new alerts x {args.rounds} rounds, "
        f"{args.batch} requests per commit; CPU µs per request (all threads)"
    )
    print("  both stored:", ", ".join(f"{n:,} {table}" for table, n in stored[0].items()))
    for name, values in seen.items():
        print(f"  {name:11} {statistics.median(values):7.1f}   rounds: ", end="")
        print(" ".join(f"{v:.1f}" for v in values))
    print(f"ratio remediator / by hand: {ours / base:.2f}")
    return seen


if __name__ == "__main__":
    main()
