"""How much work SQLite does, counted rather than timed, for tests of query cost.

Every statement on a SQLite store runs on the event loop, so a query whose work grows
with a table stops the whole server as the table grows. Counting the virtual machine's
steps makes that visible in a test without depending on this machine's speed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

EVERY = 10  # steps between two calls of the handler


async def _handle(conn: AsyncConnection, handler: Callable[[], int] | None) -> None:
    raw: Any = (await conn.get_raw_connection()).driver_connection
    await raw.set_progress_handler(handler, EVERY)


@asynccontextmanager
async def counted(engine: AsyncEngine) -> AsyncIterator[list[int]]:
    """Within the block, ``[n]`` grows by one every EVERY steps SQLite runs for
    ``engine``, whose pool holds one connection (``db.create_engine``)."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0  # 0: carry on

    async with engine.connect() as conn:
        await _handle(conn, tick)
    try:
        yield steps
    finally:
        async with engine.connect() as conn:
            await _handle(conn, None)
