from __future__ import annotations

from bugtracker_shared.inbox import inbox_table, subject_sequences_table
from bugtracker_shared.schema import moment, uuid_key
from sqlalchemy import (
    Column,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

SCHEMA = "notifications"
metadata = MetaData(schema=SCHEMA)

notifications = Table(
    "notifications",
    metadata,
    uuid_key(),
    Column("user_id", Uuid, nullable=False),
    Column("type", String(64), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("actor_id", Uuid),
    Column("project_id", Uuid),
    Column("ticket_id", Uuid),
    Column("ticket_key", String(64)),
    Column("summary", Text, nullable=False),
    moment("created_at"),
    moment("read_at", nullable=True),
    # The change that spans several events it stands for (a bulk change's id); NULL for
    # a notification of one event.
    Column("group_key", Uuid),
    # A redelivered or replayed event cannot notify the same user twice.
    UniqueConstraint("event_id", "user_id", name="uq_notifications_event_id_user_id"),
)

# Nor can the events of one bulk change, whichever replica handles them in which order:
# the first one inserted wins, the others' inserts do nothing (repositories.add_many).
Index(
    "uq_notifications_user_id_group_key",
    notifications.c.user_id,
    notifications.c.group_key,
    unique=True,
    postgresql_where=notifications.c.group_key.is_not(None),
)

# The list, newest first, with the keyset (created_at, id) as the sort order.
Index(
    "ix_notifications_user_id_created_at_id",
    notifications.c.user_id,
    notifications.c.created_at.desc(),
    notifications.c.id.desc(),
)
# `?unread=true` and the unread count touch only the (few) unread rows.
Index(
    "ix_notifications_unread",
    notifications.c.user_id,
    notifications.c.created_at.desc(),
    notifications.c.id.desc(),
    postgresql_where=notifications.c.read_at.is_(None),
)

inbox = inbox_table(metadata)
subject_sequences = subject_sequences_table(metadata)

# Who has left which project (docs/adr/0030): a project.member_removed event adds the row,
# project.member_added removes it. Notifications about a project's tickets skip them.
former_members = Table(
    "former_members",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("user_id", Uuid, primary_key=True),
    moment("left_at"),
)
