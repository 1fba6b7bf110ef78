from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings, PeerSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings, AuthKeysSettings, PeerSettings):
    """`internal_token`: with it (projects' BUGTRACKER_PROJECTS_INTERNAL_TOKEN), this
    service keeps its own view of memberships (ADR 0023); without it, every access check
    asks the projects service over HTTP."""

    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_TICKETS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_tickets@127.0.0.1:5432/bugtracker"
    projects_url: str = "http://127.0.0.1:8002"
    # An event applied later than this after it happened marks the view as lagging.
    membership_lag_seconds: float = 1.0
