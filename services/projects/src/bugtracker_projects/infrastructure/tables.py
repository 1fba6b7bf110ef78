from __future__ import annotations

from bugtracker_shared.outbox import outbox_table
from bugtracker_shared.schema import moment, tracked, uuid_key
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

SCHEMA = "projects"
metadata = MetaData(schema=SCHEMA)

projects = Table(
    "projects",
    metadata,
    uuid_key(),
    Column("key", String(10), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_by", Uuid, nullable=False),
    *tracked("archived_at", "deleted_at"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", Uuid, ForeignKey(projects.c.id, ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("email", String(320)),
    Column("role", String(16), nullable=False),
    moment("added_at"),
    PrimaryKeyConstraint("project_id", "user_id"),
    # "my projects" and the member list are keyset scans on these.
    Index("ix_memberships_user_id", "user_id", "project_id"),
    Index("ix_memberships_project_added", "project_id", "added_at", "user_id"),
)

outbox = outbox_table(metadata)
