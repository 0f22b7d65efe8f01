"""What a PostgreSQL transaction costs remediator's engine, against ``pool_pre_ping``.

Both engines run the same loop of small transactions (``BEGIN; SELECT 1; COMMIT``, one
at a time) on a real PostgreSQL started for the run (``tests/fakes/postgres.py``), in
alternating rounds:

* baseline: SQLAlchemy's pessimistic ``pool_pre_ping=True``, which on every checkout
  wraps a ping in a transaction of its own (three round trips);
* subject: ``remediator.store.db.create_engine``, which asks asyncpg whether the server
  closed the socket and sends nothing.

Printed: wall time and this process's CPU per transaction, medians over the rounds, and
the ratio subject / baseline. Every unit of work on PostgreSQL pays this per transaction.

    python bench/pg_checkout.py [--transactions 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from remediator.store.db import create_engine  # noqa: E402
from tests.fakes.postgres import Cluster  # noqa: E402


async def per_transaction(engine: AsyncEngine, count: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per transaction, after one to fill the pool."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
    return (
        (time.perf_counter() - wall) / count * 1e3,
        (time.process_time() - cpu) / count * 1e3,
    )


async def measure(url: str, args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    engines = {
        "pool_pre_ping": lambda: create_async_engine(
            url, pool_size=10, max_overflow=10, pool_pre_ping=True
        ),
        "remediator": lambda: create_engine(url),
    }
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, make in engines.items():
            engine = make()
            try:
                seen[name].append(await per_transaction(engine, args.transactions))
            finally:
                await engine.dispose()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=2000, help="per round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per engine (3)")
    args = parser.parse_args()
    cluster = Cluster()
    cluster.start()
    try:
        url = cluster.server.url(asyncio.run(cluster.server.create(migrated=False)))
        seen = asyncio.run(measure(url, args))
    finally:
        cluster.stop()
        cluster.remove()
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in seen.items()
    }
    print(f"{args.transactions} transactions x {args.rounds} rounds per engine, medians")
    print(f"{'':15} {'wall ms':>8} {'CPU ms':>8}   rounds (wall ms)")
    for name, (wall, cpu) in medians.items():
        rounds = " ".join(f"{w:.3f}" for w, _ in seen[name])
        print(f"{name:15} {wall:8.3f} {cpu:8.3f}   {rounds}")
    (base_wall, base_cpu), (wall, cpu) = medians["pool_pre_ping"], medians["remediator"]
    ratio = f"wall {wall / base_wall:.2f}, CPU {cpu / base_cpu:.2f}"
    print(f"ratio remediator / pool_pre_ping: {ratio}")


if __name__ == "__main__":
    main()
