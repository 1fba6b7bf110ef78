"""activity: a project's activity feed, built from events

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 17:30:00.000000

A new table (docs/adr/0046), filled by the consumer of the queue `tickets.activity` from
the events published after this migration; changes made before it are not backfilled.
The service's role owns the schema, so it needs no grant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_key", sa.String(length=24), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        schema="tickets",
    )
    # The feed, newest first (keyset pagination on at, id).
    op.create_index(
        "ix_activity_project_at",
        "activity",
        ["project_id", sa.text("at DESC"), sa.text("id DESC")],
        unique=False,
        schema="tickets",
    )


def downgrade() -> None:
    op.drop_index("ix_activity_project_at", table_name="activity", schema="tickets")
    op.drop_table("activity", schema="tickets")
