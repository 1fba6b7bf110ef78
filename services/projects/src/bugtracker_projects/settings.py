from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_PROJECTS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_projects@127.0.0.1:5432/bugtracker"
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    auth_url: str = "http://127.0.0.1:8001"
    http_timeout_seconds: float = 5.0
    # Shared with the other processes of one deployment: guards /internal (the membership
    # snapshot other services seed their views from). Empty: /internal answers 404.
    internal_token: str = ""
