from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings, PeerSettings
from pydantic_settings import SettingsConfigDict

# Seconds before each retry: 8 retries over about a day and a half (docs/api.md).
DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000,36000"


class Settings(ServiceSettings, AuthKeysSettings, PeerSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_WEBHOOKS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_webhooks@127.0.0.1:5432/bugtracker"
    projects_url: str = "http://127.0.0.1:8002"
    # Hosts (names or addresses, comma-separated) that may be reached over plain http and
    # may resolve to loopback, private or link-local addresses.
    allowed_hosts: str = ""
    retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    # An endpoint whose attempts have all failed for this long is disabled (5 days).
    disable_after_seconds: float = 5 * 24 * 3600
    # An endpoint must answer 2xx within this long.
    delivery_timeout_seconds: float = 10.0
    # At most this many requests at once to one host, and in all from one replica.
    max_connections_per_host: int = 4
    max_concurrent_deliveries: int = 64
    # How often the dispatcher looks for due deliveries when nothing wakes it.
    poll_seconds: float = 1.0
    # Base64 of 32 bytes: the key that encrypts the endpoints' signing secrets at rest.
    secret_key: str = ""
