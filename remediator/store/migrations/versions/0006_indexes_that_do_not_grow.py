"""Indexes so the guards, the incident list and retention read what they need, not tables.

Every SQLite statement runs on the event loop, so a query that grows with a table
stops the whole server as the table grows. Measured on SQLite before this revision:
- a guard decision counted "this runbook's runs in the last hour" by reading every
  execution of the runbook (through the unique key's index): 11 ms per decision at
  10,000 executions, 120 ms at 50,000;
- the incident list filtered by runbook read all of the runbook's matches once per
  incident it walked: 11 s for one page of 100,000 incidents;
- the hourly retention purge walked every resolved incident when none was due: 43 ms
  at 100,000;
- the incident list filtered by namespace, team or alertname sorted every incident that
  matched for each page: 90 ms for a namespace with 60,000.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_EXECUTIONS = (("runbook", "created_at"), ("namespace", "created_at"), ("target", "created_at"))
_EVENTS = ("runbook", "kind", "incident_id")
_INCIDENTS = ("status", "updated_at")
_FILTERS = ("namespace", "alertname", "team")  # each gains the id, for the list's order


def _name(table: str, columns: tuple[str, ...]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        for columns in _EXECUTIONS:
            batch_op.create_index(batch_op.f(_name("executions", columns)), list(columns))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f(_name("incidents", _INCIDENTS)), list(_INCIDENTS))
        for column in _FILTERS:
            batch_op.drop_index(batch_op.f(_name("incidents", (column,))))
            batch_op.create_index(batch_op.f(_name("incidents", (column, "id"))), [column, "id"])
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(_name("events", _EVENTS[:2])))
        batch_op.create_index(batch_op.f(_name("events", _EVENTS)), list(_EVENTS))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(_name("incidents", _INCIDENTS)))
        for column in _FILTERS:
            batch_op.drop_index(batch_op.f(_name("incidents", (column, "id"))))
            batch_op.create_index(batch_op.f(_name("incidents", (column,))), [column])
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(_name("events", _EVENTS)))
        batch_op.create_index(batch_op.f(_name("events", _EVENTS[:2])), list(_EVENTS[:2]))
    with op.batch_alter_table("executions", schema=None) as batch_op:
        for columns in _EXECUTIONS:
            batch_op.drop_index(batch_op.f(_name("executions", columns)))
