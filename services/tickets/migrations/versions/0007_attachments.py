"""attachments: files on tickets, their bytes in a content-addressed blob store

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00.000000

A new table (docs/adr/0041); the project view learns when a project was deleted, and an
index on deleted tickets serves the purge after the restore window (both small: the
index is partial on the few deleted tickets, the column nullable without a default).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        schema="tickets",
    )
    op.create_index(
        "ix_attachments_ticket",
        "attachments",
        ["ticket_id", "created_at", "id"],
        schema="tickets",
    )
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"], schema="tickets")
    op.create_index(
        "ix_attachments_project", "attachments", ["project_id", "size"], schema="tickets"
    )
    op.add_column(
        "project_view",
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        schema="tickets",
    )
    op.execute("UPDATE tickets.project_view SET deleted_at = now() WHERE deleted")
    op.create_index(
        "ix_tickets_deleted",
        "tickets",
        ["deleted_at"],
        schema="tickets",
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_deleted", table_name="tickets", schema="tickets")
    op.drop_column("project_view", "deleted_at", schema="tickets")
    op.drop_table("attachments", schema="tickets")
