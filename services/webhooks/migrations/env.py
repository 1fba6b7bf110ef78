"""Alembic environment of the webhooks service: its own schema, its own role."""

from bugtracker_shared.migrations import run_migrations
from bugtracker_webhooks.infrastructure.tables import SCHEMA, metadata
from bugtracker_webhooks.settings import Settings

run_migrations(metadata, SCHEMA, Settings().database_url)
