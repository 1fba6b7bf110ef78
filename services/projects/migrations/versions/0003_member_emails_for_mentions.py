"""member emails for mentions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:56:48.999137
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "memberships", sa.Column("email", sa.String(length=320), nullable=True), schema="projects"
    )


def downgrade() -> None:
    op.drop_column("memberships", "email", schema="projects")
