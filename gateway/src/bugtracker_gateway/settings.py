"""Gateway configuration from the environment (prefix `BUGTRACKER_GATEWAY_`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from bugtracker_gateway.routing import Backend


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_GATEWAY_", extra="ignore")

    auth_url: str = "http://127.0.0.1:8001"
    projects_url: str = "http://127.0.0.1:8002"
    tickets_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    backend_timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 1.0
    health_timeout_seconds: float = 2.0
    max_body_bytes: int = 1024 * 1024
    pool_limit_per_backend: int = 100
    # Revocations (docs/adr/0007): the broker the revocation events come from (empty: no
    # consumer, the list is only seeded at start), this gateway's own queue (each replica
    # needs its own name), and the shared secret for auth's /internal endpoints.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    revocation_queue: str = "gateway.revocations"
    internal_token: str = ""
    access_token_ttl_seconds: int = 600
    revocations_startup_wait_seconds: float = 3.0
    log_level: str = "INFO"

    def backend_url(self, backend: Backend) -> str:
        urls: dict[Backend, str] = {
            "auth": self.auth_url,
            "projects": self.projects_url,
            "tickets": self.tickets_url,
            "notifications": self.notifications_url,
        }
        return urls[backend].rstrip("/")
