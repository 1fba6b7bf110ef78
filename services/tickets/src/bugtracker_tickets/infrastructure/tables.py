from __future__ import annotations

from bugtracker_shared.outbox import outbox_table
from bugtracker_shared.schema import moment, tracked, uuid_key
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

SCHEMA = "tickets"
metadata = MetaData(schema=SCHEMA)

LIVE = text("deleted_at IS NULL")

tickets = Table(
    "tickets",
    metadata,
    uuid_key(),
    Column("project_id", Uuid, nullable=False),
    Column("number", Integer, nullable=False),
    Column("key", String(24), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    # Rendered once on write (docs/adr/0025); NULL only for rows from before that.
    Column("description_html", Text, nullable=True),
    # A type and a status of the project's configuration (docs/adr/0040).
    Column("type", String(30), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(30), nullable=False),
    # The status's category when the ticket was written (or its workflow changed):
    # milestone progress and open blockers count `done` tickets (migration 0006).
    Column("status_category", String(16), nullable=False),
    Column("resolution", String(32)),
    Column("reporter_id", Uuid, nullable=False),
    Column("assignee_id", Uuid),
    Column("labels", ARRAY(String(50)), nullable=False),
    Column("due_date", Date),
    *tracked("deleted_at"),
    # Planning (docs/adr/0039): each of the ticket's own project.
    Column("milestone_id", Uuid, ForeignKey("tickets.milestones.id")),
    Column("parent_id", Uuid, ForeignKey("tickets.tickets.id")),
    # How many live tickets not in a done-category status block this one: kept by the
    # triggers of migration 0005 on relations and on the blockers' status and deletion.
    Column("open_blockers", Integer, nullable=False, server_default=text("0")),
    # Custom field values by field key (docs/adr/0040); `field_values` indexes them.
    Column("fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Sort keys that an index can serve: priorities by rank, open-ended due dates last.
    Column(
        "priority_rank",
        SmallInteger,
        Computed(
            "CASE priority WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 "
            "WHEN 'critical' THEN 3 END",
            persisted=True,
        ),
        nullable=False,
    ),
    Column(
        "due_sort",
        Date,
        Computed("COALESCE(due_date, 'infinity'::date)", persisted=True),
        nullable=False,
    ),
    Column(
        "search",
        TSVECTOR,
        Computed(
            "setweight(to_tsvector('simple', title), 'A') || "
            "setweight(to_tsvector('simple', description), 'B')",
            persisted=True,
        ),
        nullable=False,
    ),
    UniqueConstraint("project_id", "number"),
    # One index per sort order of a project's live tickets (keyset on sort key + id).
    Index("ix_tickets_project_updated", "project_id", "updated_at", "id", postgresql_where=LIVE),
    Index("ix_tickets_project_created", "project_id", "created_at", "id", postgresql_where=LIVE),
    Index(
        "ix_tickets_project_priority", "project_id", "priority_rank", "id", postgresql_where=LIVE
    ),
    Index("ix_tickets_project_due", "project_id", "due_sort", "id", postgresql_where=LIVE),
    # "My tickets" across projects.
    Index("ix_tickets_assignee_updated", "assignee_id", "updated_at", "id", postgresql_where=LIVE),
    Index("ix_tickets_reporter_updated", "reporter_id", "updated_at", "id", postgresql_where=LIVE),
    Index("ix_tickets_search", "search", postgresql_using="gin"),
    # A milestone's tickets (the `milestone=` filter, clearing a deleted milestone) and a
    # ticket's children (the `parent=` filter, GET .../children, the hierarchy checks).
    Index(
        "ix_tickets_milestone_updated", "milestone_id", "updated_at", "id", postgresql_where=LIVE
    ),
    Index("ix_tickets_parent_number", "parent_id", "number", postgresql_where=LIVE),
    # The `is=blocked` filter: the few blocked live tickets of a project, newest first.
    Index(
        "ix_tickets_blocked",
        "project_id",
        "updated_at",
        "id",
        postgresql_where=text("deleted_at IS NULL AND open_blockers > 0"),
    ),
    # Every ticket naming a milestone, deleted ones too: clearing a deleted milestone and
    # the foreign key's check when its row is purged.
    Index(
        "ix_tickets_milestone_any",
        "milestone_id",
        postgresql_where=text("milestone_id IS NOT NULL"),
    ),
    Index("ix_tickets_labels", "labels", postgresql_using="gin"),
    # The purge of tickets deleted longer ago than the restore window.
    Index("ix_tickets_deleted", "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
)

# Milestones of a project (docs/adr/0039). `total` and `done` are kept by a trigger on
# tickets (migration 0005) in the transaction that changes a ticket, so progress is read
# from one row. A deleted milestone keeps its row (deleted_at) until no ticket names it.
milestones = Table(
    "milestones",
    metadata,
    uuid_key(),
    Column("project_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("due_date", Date),
    Column("state", String(8), nullable=False),
    *tracked("deleted_at"),
    Column("total", Integer, nullable=False, server_default=text("0")),
    Column("done", Integer, nullable=False, server_default=text("0")),
    Column(
        "due_sort",
        Date,
        Computed("COALESCE(due_date, 'infinity'::date)", persisted=True),
        nullable=False,
    ),
    # Names are unique per project among live milestones, whatever their case.
    Index(
        "ux_milestones_project_name",
        "project_id",
        text("lower(name)"),
        unique=True,
        postgresql_where=LIVE,
    ),
    # The list: a project's milestones in a state, by due date then name.
    Index(
        "ix_milestones_project_list",
        "project_id",
        "state",
        "due_sort",
        "name",
        "id",
        postgresql_where=LIVE,
    ),
    Index("ix_milestones_deleted", "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
)

# Relations between tickets, stored once: `source` blocks / duplicates / relates_to
# `target` (a relates_to with the smaller id as source). Read from both sides.
relations = Table(
    "relations",
    metadata,
    uuid_key(),
    Column("source_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(16), nullable=False),
    moment("created_at"),
    Column("created_by", Uuid, nullable=False),
    UniqueConstraint("source_id", "target_id", "type"),
    Index("ix_relations_target", "target_id", "type", "source_id"),
)

# One row per project: the last ticket number handed out. Incremented in the creating
# transaction, so numbers have no gaps and are never reused.
project_counters = Table(
    "project_counters",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("last_number", Integer, nullable=False),
)

comments = Table(
    "comments",
    metadata,
    uuid_key(),
    Column("ticket_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    Column("author_id", Uuid, nullable=False),
    Column("body", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("mentions", ARRAY(Uuid), nullable=False),
    *tracked("deleted_at"),
    Index("ix_comments_ticket_created", "ticket_id", "created_at", "id", postgresql_where=LIVE),
)

# Field-level history: who changed which field of which ticket, when, from what to what.
history = Table(
    "history",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("ticket_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    moment("at"),
    Column("actor_id", Uuid, nullable=False),
    Column("field", String(40), nullable=False),
    Column("from_value", JSONB),
    Column("to_value", JSONB),
    Index("ix_history_ticket", "ticket_id", "id"),
)

watchers = Table(
    "watchers",
    metadata,
    Column("ticket_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, nullable=False),
    moment("since"),
    PrimaryKeyConstraint("ticket_id", "user_id"),
)

# Idempotency-Key of creating requests: the key is claimed in the creating transaction,
# so two concurrent requests with one key create one resource.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Uuid, nullable=False),
    Column("scope", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("resource_id", Uuid, nullable=False),
    moment("created_at"),
    PrimaryKeyConstraint("user_id", "scope", "key"),
    Index("ix_idempotency_created", "created_at"),
)

# The projects service's projects and memberships, as this service knows them from the
# `project.*` events (and a snapshot at start): who may do what is decided here, in
# SQL, without asking projects on every request (ADR 0023). `version` is the project's
# version, the events' `sequence`: an event older than what is stored is dropped.
project_view = Table(
    "project_view",
    metadata,
    uuid_key(),
    Column("key", String(10), nullable=False, unique=True),
    Column("archived", Boolean, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    # When this service learned the project was deleted: its tickets are purged once
    # the restore window has passed since then (docs/adr/0041).
    moment("deleted_at", nullable=True),
)

member_view = Table(
    "member_view",
    metadata,
    Column(
        "project_id",
        Uuid,
        ForeignKey("tickets.project_view.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", Uuid, nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("project_id", "user_id"),
    Index("ix_member_view_user", "user_id", "project_id"),
)

# A project's workflow and ticket types (docs/adr/0040); no row, or a NULL document, is
# the default. Each document has its own version (its ETag).
project_configs = Table(
    "project_configs",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("workflow", JSONB),
    Column("workflow_version", Integer, nullable=False, server_default=text("1")),
    Column("ticket_types", JSONB),
    Column("types_version", Integer, nullable=False, server_default=text("1")),
)

# Custom field definitions. A deleted one keeps its row (and its key) until the values
# tickets still hold are purged by a background job; reads hide them from the start.
custom_fields = Table(
    "custom_fields",
    metadata,
    uuid_key(),
    Column("project_id", Uuid, nullable=False),
    Column("key", String(30), nullable=False),
    Column("name", String(50), nullable=False),
    Column("type", String(16), nullable=False),
    Column("options", JSONB, nullable=False),
    Column("required", Boolean, nullable=False),
    Column("ticket_types", ARRAY(String(30))),
    Column("description", Text, nullable=False),
    Column("position", Integer, nullable=False),
    *tracked("deleted_at"),
    UniqueConstraint("project_id", "key"),
    Index(
        "ix_custom_fields_deleted",
        "project_id",
        "key",
        postgresql_where=text("deleted_at IS NOT NULL"),
    ),
)

# The `field.<key>` filters' index: one row per value of a ticket's custom field (a
# multi-select one per option), written in the ticket's transaction. Text-like values
# (text, url, select, user, bool) in `value`, numbers in `number`, dates in `day`.
field_values = Table(
    "field_values",
    metadata,
    Column("ticket_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    Column("field_id", Uuid, nullable=False),
    Column("value", Text),
    Column("number", Float),
    Column("day", Date),
    Index("ix_field_values_ticket", "ticket_id", "field_id"),
    Index("ix_field_values_value", "field_id", "value", "ticket_id"),
    Index(
        "ix_field_values_number",
        "field_id",
        "number",
        "ticket_id",
        postgresql_where=text("number IS NOT NULL"),
    ),
    Index(
        "ix_field_values_day",
        "field_id",
        "day",
        "ticket_id",
        postgresql_where=text("day IS NOT NULL"),
    ),
)

# Files on tickets (docs/adr/0041): the bytes are in the blob store under their sha256,
# written before the row; a row is the only thing that makes them visible. Deleting an
# attachment deletes its row; the store's sweep removes bytes no row names.
attachments = Table(
    "attachments",
    metadata,
    uuid_key(),
    Column("ticket_id", Uuid, ForeignKey("tickets.tickets.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Uuid, nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(127), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploader_id", Uuid, nullable=False),
    moment("created_at"),
    Index("ix_attachments_ticket", "ticket_id", "created_at", "id"),
    Index("ix_attachments_sha256", "sha256"),
    Index("ix_attachments_project", "project_id", "size"),
)

# A project's activity feed (docs/adr/0046): one entry per event that makes one, written
# by the consumer of `tickets.activity`; `event_id` makes a redelivery insert nothing. No
# foreign keys: an entry may outlive what it names (a deleted or purged ticket's entries
# are left out when read, a deleted project's are purged with its tickets).
activity = Table(
    "activity",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("project_id", Uuid, nullable=False),
    moment("at"),
    Column("actor_id", Uuid, nullable=True),
    Column("kind", String(40), nullable=False),
    Column("ticket_id", Uuid, nullable=True),
    Column("ticket_key", String(24), nullable=True),
    Column("summary", Text, nullable=False),
)
# The feed, newest first (keyset pagination on at, id).
Index("ix_activity_project_at", activity.c.project_id, activity.c.at.desc(), activity.c.id.desc())

# Saved filters (docs/adr/0045): a user's own, by name, and those shared in a project.
saved_filters = Table(
    "saved_filters",
    metadata,
    uuid_key(),
    Column("owner_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    Column("query", String(1000), nullable=False),
    Column("project_id", Uuid, nullable=True),
    Column("shared", Boolean, nullable=False),
    *tracked(),
    Index("ix_saved_filters_owner", "owner_id", "name", "id"),
    Index(
        "ix_saved_filters_shared",
        "project_id",
        "name",
        "id",
        postgresql_where=text("shared"),
    ),
)

outbox = outbox_table(metadata)
