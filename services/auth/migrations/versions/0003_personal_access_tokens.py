"""personal access tokens

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-14 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Personal access tokens (docs/adr/0042): only the SHA-256 of the secret is stored.
    op.create_table(
        "personal_access_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        schema="auth",
    )
    # The owner's list, newest first (keyset pagination on created_at, id).
    op.create_index(
        "ix_personal_access_tokens_user_created",
        "personal_access_tokens",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        unique=False,
        schema="auth",
    )
    # The gateway's revocation seed reads recently revoked tokens with the sessions.
    op.create_index(
        "ix_personal_access_tokens_revoked_at",
        "personal_access_tokens",
        ["revoked_at"],
        unique=False,
        schema="auth",
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_personal_access_tokens_revoked_at", table_name="personal_access_tokens", schema="auth"
    )
    op.drop_index(
        "ix_personal_access_tokens_user_created",
        table_name="personal_access_tokens",
        schema="auth",
    )
    op.drop_table("personal_access_tokens", schema="auth")
