"""Executions: room for 'verification_failed'; jobs: an index for per-incident lookups.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.alter_column(
            "status", existing_type=sa.String(length=16), type_=sa.String(length=32)
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_incident_id"), ["incident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_incident_id"))
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.alter_column(
            "status", existing_type=sa.String(length=32), type_=sa.String(length=16)
        )
