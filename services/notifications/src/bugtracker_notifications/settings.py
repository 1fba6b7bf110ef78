from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_NOTIFICATIONS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_notifications@127.0.0.1:5432/bugtracker"
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
