from __future__ import annotations

from bugtracker_shared.secret_settings import CheckedSettings
from pydantic_settings import SettingsConfigDict


class Settings(CheckedSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_PROJECTS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_projects@127.0.0.1:5432/bugtracker"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    auth_url: str = "http://127.0.0.1:8001"
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    db_pool_size: int = 20
    http_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    # Shared with the other processes of one deployment: guards /internal (the membership
    # snapshot other services seed their views from). Empty: /internal answers 404.
    internal_token: str = ""
