"""notification preferences and the e-mails

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 15:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "notifications"


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=16), nullable=False),
        sa.Column("digest_interval_minutes", sa.Integer(), nullable=False),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_digest_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
        schema=S,
    )
    op.create_table(
        "mails",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("notification_type", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_key", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("digest_id", sa.Uuid(), nullable=True),
        sa.Column("group_key", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=S,
    )
    op.create_index(
        "uq_mails_event_id_user_id",
        "mails",
        ["event_id", "user_id"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("event_id IS NOT NULL"),
    )
    op.create_index(
        "uq_mails_user_id_group_key",
        "mails",
        ["user_id", "group_key"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("group_key IS NOT NULL"),
    )
    op.create_index(
        "ix_mails_due",
        "mails",
        ["next_attempt_at"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_mails_queued",
        "mails",
        ["user_id", "created_at"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_mails_digest_id",
        "mails",
        ["digest_id"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("digest_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("mails", schema=S)
    op.drop_table("preferences", schema=S)
