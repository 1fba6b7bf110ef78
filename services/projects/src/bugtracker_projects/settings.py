from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings, PeerSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings, AuthKeysSettings, PeerSettings):
    """`internal_token`: guards /internal (the membership snapshot other services seed
    their views from, and the co-members auth's user directory asks for)."""

    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_PROJECTS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_projects@127.0.0.1:5432/bugtracker"
    auth_url: str = "http://127.0.0.1:8001"
