"""saved filters

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 17:40:00.000000

A user's named ticket queries, private or shared in a project (docs/adr/0045). The
service's role owns the schema, so it needs no grant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saved_filters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("query", sa.String(length=1000), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="tickets",
    )
    # A user's own filters by name, and those shared in a project by name.
    op.create_index(
        "ix_saved_filters_owner", "saved_filters", ["owner_id", "name", "id"], schema="tickets"
    )
    op.create_index(
        "ix_saved_filters_shared",
        "saved_filters",
        ["project_id", "name", "id"],
        schema="tickets",
        postgresql_where=sa.text("shared"),
    )


def downgrade() -> None:
    op.drop_index("ix_saved_filters_shared", table_name="saved_filters", schema="tickets")
    op.drop_index("ix_saved_filters_owner", table_name="saved_filters", schema="tickets")
    op.drop_table("saved_filters", schema="tickets")
