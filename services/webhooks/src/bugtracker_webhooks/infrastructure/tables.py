"""The webhooks service's tables (schema `webhooks`): endpoints, their deliveries, the
inbox of events already turned into deliveries, and the outbox of its own events."""

from __future__ import annotations

from bugtracker_shared.inbox import inbox_table
from bugtracker_shared.outbox import outbox_table
from bugtracker_shared.schema import moment, tracked, uuid_key
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

SCHEMA = "webhooks"
metadata = MetaData(schema=SCHEMA)

webhooks = Table(
    "webhooks",
    metadata,
    uuid_key(),
    Column("project_id", Uuid, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(String(100)), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("active", Boolean, nullable=False),
    # The signing secret, encrypted at rest (AES-GCM with the deployment's key); the
    # previous one stays valid (and signs too) until `previous_secret_expires_at`.
    Column("secret", LargeBinary, nullable=False),
    Column("previous_secret", LargeBinary),
    moment("previous_secret_expires_at", nullable=True),
    # Since when every attempt has failed (NULL after a success); 5 days of it disable.
    moment("failing_since", nullable=True),
    moment("disabled_at", nullable=True),
    Column("created_by", Uuid, nullable=False),
    *tracked(),
)
Index(
    "ix_webhooks_project_id_created_at_id",
    webhooks.c.project_id,
    webhooks.c.created_at.desc(),
    webhooks.c.id.desc(),
)

deliveries = Table(
    "deliveries",
    metadata,
    uuid_key(),
    Column("webhook_id", Uuid, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", String(100), nullable=False),
    # Deliveries of one key go out one at a time, in (`sequence`, `position`) order: the
    # event's subject (a ticket's id) and version. A redelivery or a ping has a key of its
    # own, so it holds nothing up.
    Column("ordering_key", String(100), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("position", BigInteger, Identity(always=True), nullable=False, unique=True),
    # The exact bytes sent on every attempt (the CloudEvent's JSON).
    Column("payload", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempt", Integer, nullable=False),  # attempts made so far
    moment("next_attempt_at", nullable=True),
    # A replica sending it holds it until then; an expired lease is taken over.
    moment("leased_until", nullable=True),
    Column("response_status", Integer),
    Column("duration_ms", Integer),
    Column("error", Text),
    Column("redelivery_of", Uuid),
    moment("created_at"),
    moment("updated_at"),
)
# One delivery per (webhook, event) from the consumer, whatever the broker redelivers.
Index(
    "uq_deliveries_webhook_id_event_id",
    deliveries.c.webhook_id,
    deliveries.c.event_id,
    unique=True,
    postgresql_where=text("redelivery_of IS NULL AND event_type <> 'webhook.ping'"),
)
# The dispatcher's scan: what is due.
Index(
    "ix_deliveries_due",
    deliveries.c.next_attempt_at,
    postgresql_where=text("status = 'pending'"),
)
# What holds a delivery back: an earlier pending one of the same webhook and key.
Index(
    "ix_deliveries_pending_order",
    deliveries.c.webhook_id,
    deliveries.c.ordering_key,
    deliveries.c.sequence,
    deliveries.c.position,
    postgresql_where=text("status = 'pending'"),
)
# The log, newest first.
Index(
    "ix_deliveries_webhook_id_created_at_id",
    deliveries.c.webhook_id,
    deliveries.c.created_at.desc(),
    deliveries.c.id.desc(),
)

inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
