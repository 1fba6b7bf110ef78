"""Alembic environment of the auth service: its own schema, its own role."""

from bugtracker_auth.infrastructure.tables import SCHEMA, metadata
from bugtracker_auth.settings import Settings
from bugtracker_shared.migrations import run_migrations

run_migrations(metadata, SCHEMA, Settings().database_url)
