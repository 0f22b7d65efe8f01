"""The one place the store differs between SQLite and PostgreSQL: INSERT … ON CONFLICT.

Both speak it, through different SQLAlchemy constructs; everything else is plain Core.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

Upsert = sqlite.Insert | postgresql.Insert


def insert(conn: AsyncConnection, table: Table) -> Upsert:
    """An INSERT that can say what to do on a conflict, for the connection's backend."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
