"""membership view: projects and memberships as the project.* events tell them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_view",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=10), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        schema="tickets",
    )
    op.create_table(
        "member_view",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["tickets.project_view.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "user_id"),
        schema="tickets",
    )
    op.create_index(
        "ix_member_view_user", "member_view", ["user_id", "project_id"], schema="tickets"
    )


def downgrade() -> None:
    op.drop_index("ix_member_view_user", table_name="member_view", schema="tickets")
    op.drop_table("member_view", schema="tickets")
    op.drop_table("project_view", schema="tickets")
