"""What a SQLite statement costs remediator's engine, against SQLAlchemy's own aiosqlite.

Both engines run the same Core statements on a migrated store in a temp dir, in
alternating rounds:

* baseline: ``create_async_engine("sqlite+aiosqlite://...")`` as SQLAlchemy ships it
  (each statement in a greenlet, each cursor call a trip to aiosqlite's thread);
* subject: ``remediator.store.db.create_engine`` (statements on the loop's thread with
  no greenlet, commits on aiosqlite's thread; see ``remediator/store/sqlite.py``).

Measured, each as this process's CPU per operation: a primary-key SELECT of three
columns, a one-row INSERT into the timeline (JSON and a timestamp to process), a whole
transaction holding that SELECT (connection from the pool, BEGIN, SELECT, commit, back
to the pool), and a whole durable transaction holding the INSERT (the same, with the
BEGIN hook and an fsync'd commit). Printed: medians over the rounds and the ratio
subject / baseline.

    python bench/sqlite_statements.py [--operations 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

from remediator.store.db import create_engine, durable_transaction, migrate  # noqa: E402
from remediator.store.tables import events, incidents  # noqa: E402

NOW = datetime.now(UTC)
INCIDENT = {
    **dict.fromkeys(("alertname", "namespace", "severity", "summary", "external_url"), ""),
    **{"id": "i1", "status": "open", "group_key": "", "created_at": NOW, "updated_at": NOW},
}
EVENT = {
    "incident_id": "i1",
    "at": NOW,
    "stage": "execute",
    "kind": "intent",
    "message": "restart Deployment prod/web",
    "data": {"action": "restart", "target": "Deployment/prod/web"},
}
SELECT = select(incidents.c.status, incidents.c.alertname, incidents.c.created_at).where(
    incidents.c.id == "i1"
)


async def cpu_per(count: int, op: Callable[[], Awaitable[object]]) -> float:
    """µs of this process's CPU per ``op``, after a few to warm it."""
    for _ in range(20):
        await op()
    cpu = time.process_time()
    for _ in range(count):
        await op()
    return (time.process_time() - cpu) / count * 1e6


async def select_row(conn: AsyncConnection) -> object:
    return (await conn.execute(SELECT)).all()


async def insert_row(conn: AsyncConnection) -> object:
    return await conn.execute(events.insert(), EVENT)


async def one_round(engine: AsyncEngine, count: int) -> dict[str, float]:
    async with engine.connect() as conn:
        seen = {
            "SELECT by key": await cpu_per(count, lambda: select_row(conn)),
            "INSERT one row": await cpu_per(count, lambda: insert_row(conn)),
        }
        await conn.rollback()

    async def reading() -> None:
        async with engine.begin() as conn:
            await select_row(conn)

    async def durable() -> None:
        async with durable_transaction(engine) as conn:
            await insert_row(conn)

    seen["transaction: SELECT"] = await cpu_per(count, reading)
    seen["durable: INSERT"] = await cpu_per(max(count // 10, 1), durable)
    return seen


async def measure(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        store = create_engine(url)
        await migrate(store)
        async with store.begin() as conn:
            await conn.execute(incidents.insert(), INCIDENT)
        await store.dispose()
        engines = {
            "sqlalchemy": lambda: create_async_engine(url, pool_size=1, max_overflow=0),
            "remediator": lambda: create_engine(url),
        }
        seen: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
        for _ in range(args.rounds):
            for name, make in engines.items():
                engine = make()
                try:
                    seen[name].append(await one_round(engine, args.operations))
                finally:
                    await engine.dispose()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=3000, help="per round (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per engine (3)")
    args = parser.parse_args()
    seen = asyncio.run(measure(args))
    print(f"{args.operations} of each (durable transactions: a tenth) x {args.rounds} rounds")
    print(f"{'CPU µs per':22} {'sqlalchemy':>10} {'remediator':>10} {'ratio':>6}")
    for op in seen["sqlalchemy"][0]:
        base = statistics.median(r[op] for r in seen["sqlalchemy"])
        ours = statistics.median(r[op] for r in seen["remediator"])
        print(f"{op:22} {base:10.1f} {ours:10.1f} {ours / base:6.2f}")


if __name__ == "__main__":
    main()
