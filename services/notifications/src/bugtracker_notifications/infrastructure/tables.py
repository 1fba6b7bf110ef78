from __future__ import annotations

from bugtracker_shared.inbox import inbox_table, subject_sequences_table
from bugtracker_shared.schema import moment, uuid_key
from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

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

# A user's notification preferences (docs/api.md, "E-mail notifications and preferences");
# no row: the defaults. `events` holds only the types set: {type: {in_app, email}}.
preferences = Table(
    "preferences",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("email", String(16), nullable=False),
    Column("digest_interval_minutes", Integer, nullable=False),
    Column("events", JSONB, nullable=False),
    moment("updated_at", nullable=True),
    Column("version", Integer, nullable=False),
    # When the user's last digest went out: the next goes an interval later.
    moment("last_digest_at", nullable=True),
)

# The e-mails: one per notification a user wants by e-mail (written with it), and the
# digests. Sent at least once by the mail sender (a lease per attempt), each with a
# Message-ID made from its id, so a resend after a crash is the same message.
mails = Table(
    "mails",
    metadata,
    uuid_key(),
    Column("user_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("notification_type", String(64)),
    Column("event_id", Uuid),
    Column("actor_id", Uuid),
    Column("project_id", Uuid),
    Column("ticket_id", Uuid),
    Column("ticket_key", String(64)),
    Column("title", Text),
    Column("summary", Text, nullable=False),
    moment("created_at"),
    Column("attempts", Integer, nullable=False),
    moment("next_attempt_at", nullable=True),
    moment("leased_until", nullable=True),
    moment("sent_at", nullable=True),
    Column("error", Text),
    # The digest mail that carried this one.
    Column("digest_id", Uuid),
    # As for notifications: one mail per user for the events of one bulk change.
    Column("group_key", Uuid),
)
Index(
    "uq_mails_user_id_group_key",
    mails.c.user_id,
    mails.c.group_key,
    unique=True,
    postgresql_where=mails.c.group_key.is_not(None),
)
# A redelivered event cannot mail the same user twice.
Index(
    "uq_mails_event_id_user_id",
    mails.c.event_id,
    mails.c.user_id,
    unique=True,
    postgresql_where=mails.c.event_id.is_not(None),
)
# The sender's scan: what is due.
Index("ix_mails_due", mails.c.next_attempt_at, postgresql_where=mails.c.status == "pending")
# The digest job's scan, and a digest's items.
Index(
    "ix_mails_queued",
    mails.c.user_id,
    mails.c.created_at,
    postgresql_where=mails.c.status == "queued",
)
Index("ix_mails_digest_id", mails.c.digest_id, postgresql_where=mails.c.digest_id.is_not(None))
