from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_AUTH_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_auth@127.0.0.1:5432/bugtracker"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    db_pool_size: int = 20
    keys_dir: Path = Path(".data/keys")
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    registration_open: bool = True
    # argon2id, OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1. A change takes
    # effect for each user at their next login (the hash is upgraded then).
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # Login throttling (per process, see docs/adr/0006).
    login_ip_failures_per_minute: int = 10
    login_account_free_failures: int = 5
    login_account_max_delay_seconds: float = 900.0
    # The client address is the last X-Forwarded-For hop, the one the gateway appended.
    # Only safe while auth is reachable through the gateway alone (it is, in every
    # deployment here); set False to use the socket peer instead.
    trust_forwarded_for: bool = True
    # Shared secret that service callers of /internal/* present in X-Internal-Token.
    # Empty: the internal endpoints answer 404.
    internal_token: str = ""
    log_level: str = "INFO"
