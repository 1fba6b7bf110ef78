"""notification groups: one notification per user for the events of one bulk change

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: a catalog-only change, no table rewrite.
    op.add_column(
        "notifications",
        sa.Column("group_key", sa.Uuid(), nullable=True),
        schema="notifications",
    )
    # Partial: only the (few) grouped rows are indexed. The build reads the table once
    # and indexes no row yet (the column is all NULL); a plain CREATE INDEX, in the
    # migration's transaction, like the other migrations.
    op.create_index(
        "uq_notifications_user_id_group_key",
        "notifications",
        ["user_id", "group_key"],
        unique=True,
        schema="notifications",
        postgresql_where=sa.text("group_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_notifications_user_id_group_key",
        table_name="notifications",
        schema="notifications",
        postgresql_where=sa.text("group_key IS NOT NULL"),
    )
    op.drop_column("notifications", "group_key", schema="notifications")
