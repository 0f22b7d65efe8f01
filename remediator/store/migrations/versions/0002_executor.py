"""Executor: job kinds, execution ids and params, guard state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="alert", nullable=False)
        )
        batch_op.add_column(sa.Column("execution_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("namespace", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("params", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("verify_deadline", UTC_DATETIME, nullable=True))
        batch_op.create_index(batch_op.f("ix_executions_uid"), ["uid"], unique=True)
        batch_op.create_index(batch_op.f("ix_executions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_executions_target_status"), ["target", "status"], unique=False
        )
    op.create_table(
        "guard_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_guard_state")),
    )


def downgrade() -> None:
    op.drop_table("guard_state")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_target_status"))
        batch_op.drop_index(batch_op.f("ix_executions_created_at"))
        batch_op.drop_index(batch_op.f("ix_executions_uid"))
        batch_op.drop_column("verify_deadline")
        batch_op.drop_column("params")
        batch_op.drop_column("namespace")
        batch_op.drop_column("uid")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("execution_id")
        batch_op.drop_column("kind")
