from __future__ import annotations

from bugtracker_shared.outbox import outbox_table
from sqlalchemy import (
    ARRAY,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

SCHEMA = "tickets"
metadata = MetaData(schema=SCHEMA)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", Uuid, nullable=False),
    Column("number", Integer, nullable=False),
    Column("key", String(24), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("type", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("resolution", String(32)),
    Column("reporter_id", Uuid, nullable=False),
    Column("assignee_id", Uuid),
    Column("labels", ARRAY(String(50)), nullable=False),
    Column("due_date", Date),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("project_id", "number"),
    # The default list order: a project's tickets, most recently updated first.
    Index("ix_tickets_project_updated", "project_id", "updated_at", "id"),
    Index("ix_tickets_assignee_updated", "assignee_id", "updated_at", "id"),
)

# One row per project: the last ticket number handed out. Incremented in the creating
# transaction, so numbers have no gaps and are never reused.
project_counters = Table(
    "project_counters",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("last_number", Integer, nullable=False),
)

outbox = outbox_table(metadata)
