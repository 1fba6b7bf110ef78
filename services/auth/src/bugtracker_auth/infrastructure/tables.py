from __future__ import annotations

from bugtracker_shared.outbox import outbox_table
from bugtracker_shared.schema import moment, tracked, uuid_key
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

SCHEMA = "auth"
metadata = MetaData(schema=SCHEMA)

users = Table(
    "users",
    metadata,
    uuid_key(),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("is_active", Boolean, nullable=False),
    *tracked(),
    # Prefix search (`GET /users?q=`): LIKE 'q%' can use a btree only with text_pattern_ops
    # under a non-C collation. Emails are stored lower-cased already.
    Index("ix_users_email_pattern", "email", postgresql_ops={"email": "text_pattern_ops"}),
    Index("ix_users_created_at_id", "created_at", "id"),
)
Index(
    "ix_users_display_name_pattern",
    func.lower(users.c.display_name).label("display_name_lower"),
    postgresql_ops={"display_name_lower": "text_pattern_ops"},
)

sessions = Table(
    "sessions",
    metadata,
    uuid_key(),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    moment("created_at"),
    moment("expires_at"),
    moment("revoked_at", nullable=True),
    Index("ix_sessions_user_id", "user_id"),
)
# What the gateway seeds its revocation list from: sessions revoked in the last minutes.
Index(
    "ix_sessions_revoked_at",
    sessions.c.revoked_at,
    postgresql_where=sessions.c.revoked_at.is_not(None),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("session_id", Uuid, ForeignKey(sessions.c.id, ondelete="CASCADE"), nullable=False),
    moment("created_at"),
    moment("expires_at"),
    moment("used_at", nullable=True),
    Index("ix_refresh_tokens_session_id", "session_id"),
)

# Personal access tokens (docs/adr/0042): only the SHA-256 of the secret is stored.
personal_access_tokens = Table(
    "personal_access_tokens",
    metadata,
    uuid_key(),
    Column("user_id", Uuid, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    moment("created_at"),
    moment("expires_at"),
    moment("last_used_at", nullable=True),
    moment("revoked_at", nullable=True),
)
# The owner's list, newest first (keyset pagination on created_at, id).
Index(
    "ix_personal_access_tokens_user_created",
    personal_access_tokens.c.user_id,
    personal_access_tokens.c.created_at.desc(),
    personal_access_tokens.c.id.desc(),
)
# What the gateway seeds its revocation list from, with the sessions.
Index(
    "ix_personal_access_tokens_revoked_at",
    personal_access_tokens.c.revoked_at,
    postgresql_where=personal_access_tokens.c.revoked_at.is_not(None),
)

outbox = outbox_table(metadata)
