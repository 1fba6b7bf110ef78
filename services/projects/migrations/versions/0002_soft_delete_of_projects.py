"""soft delete of projects

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:28:53.180645
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "projects",
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        schema="projects",
    )


def downgrade() -> None:
    op.drop_column("projects", "deleted_at", schema="projects")
