from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings, AuthKeysSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_NOTIFICATIONS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_notifications@127.0.0.1:5432/bugtracker"
