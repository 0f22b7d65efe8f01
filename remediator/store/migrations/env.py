"""Alembic environment: runs on the connection the server hands it (see store.db.migrate)."""

from __future__ import annotations

from alembic import context

from remediator.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through remediator.store.db.migrate()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
