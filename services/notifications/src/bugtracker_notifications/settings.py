from __future__ import annotations

from bugtracker_shared.secret_settings import CheckedSettings
from pydantic_settings import SettingsConfigDict


class Settings(CheckedSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_NOTIFICATIONS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_notifications@127.0.0.1:5432/bugtracker"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    db_pool_size: int = 20
    log_level: str = "INFO"
