from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_AUTH_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_auth@127.0.0.1:5432/bugtracker"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    db_pool_size: int = 10
    keys_dir: Path = Path(".data/keys")
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    registration_open: bool = True
    log_level: str = "INFO"
