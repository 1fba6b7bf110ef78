"""Alembic environment of the projects service: its own schema, its own role."""

from bugtracker_projects.infrastructure.tables import SCHEMA, metadata
from bugtracker_projects.settings import Settings
from bugtracker_shared.migrations import run_migrations

run_migrations(metadata, SCHEMA, Settings().database_url)
