from __future__ import annotations

from pathlib import Path

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import PeerSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings, PeerSettings):
    """`internal_token`: callers of /internal/* present it; with it, auth also asks
    projects who shares a project with the caller of the user directory (ADR 0028)."""

    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_AUTH_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_auth@127.0.0.1:5432/bugtracker"
    keys_dir: Path = Path(".data/keys")
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # A session ends this long after its login however often it is refreshed.
    session_max_lifetime_seconds: int = 30 * 24 * 3600
    registration_open: bool = True
    # argon2id, OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1. A change takes
    # effect for each user at their next login (the hash is upgraded then).
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # Login throttling (docs/adr/0006, 0028 and 0037). The account delay is per (account,
    # client address), forgotten `login_account_memory_seconds` after the pair's last
    # failure; the spread limit holds back clients that have not logged in to the account
    # within `login_known_client_seconds` once that many addresses failed on it within the
    # window.
    login_ip_failures_per_minute: int = 10
    login_account_free_failures: int = 5
    login_account_max_delay_seconds: float = 900.0
    login_account_memory_seconds: float = 24 * 3600.0
    login_spread_addresses: int = 10
    login_spread_window_seconds: float = 3600.0
    login_known_client_seconds: float = 30 * 24 * 3600.0
    # Where the throttle's counters live: a Redis URL shared by every auth replica (ADR
    # 0037), or empty for this process's memory (a single auth process only). With Redis,
    # a login answers 503 `throttle_unavailable` when Redis does not answer within the
    # timeout: passwords are never checked without the counters.
    redis_url: str = ""
    redis_timeout_seconds: float = 0.5
    # The client address of the per-IP throttle is the one uvicorn determined: the
    # gateway's X-Forwarded-For only from the addresses of `--forwarded-allow-ips` (the
    # gateway's, in every launch of auth), else the socket peer (docs/adr/0027).
    # The projects service, asked (with the internal token) who shares a project with the
    # caller of the user directory (docs/adr/0028).
    projects_url: str = "http://127.0.0.1:8002"
    # How many live personal access tokens a user may hold (docs/adr/0042).
    max_personal_access_tokens: int = 100
