"""attachments: files on tickets, their bytes in a content-addressed blob store

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00.000000

A new table only (docs/adr/0041).
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


def downgrade() -> None:
    op.drop_table("attachments", schema="tickets")
