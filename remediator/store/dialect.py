"""The one place the store differs between SQLite and PostgreSQL: INSERT … ON CONFLICT.

Both speak it, through different SQLAlchemy constructs; everything else is plain Core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

Upsert = sqlite.Insert | postgresql.Insert
T = TypeVar("T")


def per_backend(build: Callable[[Callable[[Table], Upsert]], T]) -> dict[str, T]:
    """A statement built once for each backend, keyed by dialect name: building one
    costs more than running it, and these run on an alert's path."""
    return {"sqlite": build(sqlite.insert), "postgresql": build(postgresql.insert)}


def insert(conn: AsyncConnection, table: Table) -> Upsert:
    """An INSERT that can say what to do on a conflict, for the connection's backend."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
