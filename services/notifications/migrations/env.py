"""Alembic environment of the notifications service: its own schema, its own role."""

from bugtracker_notifications.infrastructure.tables import SCHEMA, metadata
from bugtracker_notifications.settings import Settings
from bugtracker_shared.migrations import run_migrations

run_migrations(metadata, SCHEMA, Settings().database_url)
