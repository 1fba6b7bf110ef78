"""stored html: descriptions and comment bodies rendered once on write

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 02:00:00.000000

Rows written before this revision keep NULL: reads render them until the service's
backfill job (bugtracker_tickets.infrastructure.html_backfill) has stored their HTML.
Adding a nullable column without a default does not rewrite the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tickets", sa.Column("description_html", sa.Text(), nullable=True), schema="tickets"
    )
    op.add_column("comments", sa.Column("body_html", sa.Text(), nullable=True), schema="tickets")


def downgrade() -> None:
    op.drop_column("comments", "body_html", schema="tickets")
    op.drop_column("tickets", "description_html", schema="tickets")
