"""Alembic environment of the tickets service: its own schema, its own role."""

from bugtracker_shared.migrations import run_migrations
from bugtracker_tickets.infrastructure.tables import SCHEMA, metadata
from bugtracker_tickets.settings import Settings

run_migrations(metadata, SCHEMA, Settings().database_url)
