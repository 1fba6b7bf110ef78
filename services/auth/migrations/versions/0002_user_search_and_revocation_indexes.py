"""user search and revocation indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Prefix search for GET /users?q=: LIKE 'q%' uses a btree only with text_pattern_ops
    # (the database collation is not C). pg_trgm would need a superuser to install.
    op.create_index(
        "ix_users_email_pattern",
        "users",
        ["email"],
        unique=False,
        schema="auth",
        postgresql_ops={"email": "text_pattern_ops"},
    )
    op.execute(
        "CREATE INDEX ix_users_display_name_pattern ON auth.users "
        "(lower(display_name) text_pattern_ops)"
    )
    op.create_index(
        "ix_users_created_at_id", "users", ["created_at", "id"], unique=False, schema="auth"
    )
    op.create_index(
        "ix_sessions_revoked_at",
        "sessions",
        ["revoked_at"],
        unique=False,
        schema="auth",
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_revoked_at", table_name="sessions", schema="auth")
    op.drop_index("ix_users_created_at_id", table_name="users", schema="auth")
    op.drop_index("ix_users_display_name_pattern", table_name="users", schema="auth")
    op.drop_index("ix_users_email_pattern", table_name="users", schema="auth")
