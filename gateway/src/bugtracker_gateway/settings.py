"""Gateway configuration from the environment (prefix `BUGTRACKER_GATEWAY_`)."""

from __future__ import annotations

from bugtracker_shared.secret_settings import CheckedSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bugtracker_gateway.forwarding import TrustedProxies
from bugtracker_gateway.routing import BACKENDS, ROUTES, Backend

MIB = 1024 * 1024
# What a multipart body of one file takes besides the file's bytes (boundaries, part
# headers): the tickets service allows as much (bugtracker_tickets.api.uploads).
UPLOAD_OVERHEAD_BYTES = 16 * 1024


class Settings(CheckedSettings):
    # populate_by_name: `Settings(attachments_max_bytes=...)` as for the other fields.
    model_config = SettingsConfigDict(
        env_prefix="BUGTRACKER_GATEWAY_", extra="ignore", populate_by_name=True
    )

    # Each backend's base URL; several, comma-separated, for replicas (round robin, and a
    # replica that refused a connection is skipped for `replica_down_seconds`).
    auth_url: str = "http://127.0.0.1:8001"
    projects_url: str = "http://127.0.0.1:8002"
    tickets_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    webhooks_url: str = "http://127.0.0.1:8005"
    replica_down_seconds: float = 5.0
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    backend_timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 1.0
    health_timeout_seconds: float = 2.0
    # Request bodies are read whole up to this size (more is 413), except an attachment
    # upload's, which is streamed to the tickets service (docs/adr/0041).
    max_body_bytes: int = 1024 * 1024
    # The largest attachment: the deployment's BUGTRACKER_ATTACHMENTS_MAX_BYTES, which the
    # tickets service reads too (not a BUGTRACKER_GATEWAY_ name). An upload's body may be
    # this plus UPLOAD_OVERHEAD_BYTES; more is 413, refused at once when its
    # Content-Length says so, else cut off where it passes the limit.
    attachments_max_bytes: int = Field(
        default=25 * MIB,
        gt=0,
        validation_alias="BUGTRACKER_ATTACHMENTS_MAX_BYTES",
    )
    # An attachment upload (the client's body streamed through, then the answer) and a
    # streamed response body (after its headers, docs/adr/0041) may take this long in
    # all, instead of `backend_timeout_seconds`: 25 MiB in 300 s is a client at about
    # 87 KB/s. A streamed body must still come from the backend without a pause longer
    # than `backend_timeout_seconds`.
    transfer_timeout_seconds: float = Field(default=300.0, gt=0)
    # All request header lines together (names and values); more is 431.
    max_header_bytes: int = 16 * 1024
    pool_limit_per_backend: int = 100
    # Event streams (docs/adr/0026) hold a backend connection each, from a pool of their
    # own (`stream_connection_limit` per gateway replica; a stream beyond it is refused
    # with 503): ordinary requests and the health probes never wait behind them. A user
    # may hold `stream_limit_per_user` streams at once (the next one is 429
    # `too_many_streams`); a stream ends after `stream_max_lifetime_seconds`, at its
    # token's `exp`, or when its session is revoked or its user deactivated.
    stream_connection_limit: int = 1000
    stream_limit_per_user: int = 5
    stream_max_lifetime_seconds: float = 3600.0
    # /health answers from the backends' state as last probed; it probes them again at
    # most this often, one round of probes at a time however many requests come in.
    health_refresh_seconds: float = 3.0
    # Rate limits (docs/adr/0020), in the `limits` notation ("600/minute", "10/second").
    # Per user id when the request carries a valid token, per client IP otherwise; the
    # login, register, token and refresh endpoints have a stricter one of their own, per IP.
    rate_limit_enabled: bool = True
    rate_limit: str = "1200/minute"
    auth_rate_limit: str = "30/minute"
    # Answers 401 (no or an invalid access token), per client IP; over it, 429.
    auth_failure_rate_limit: str = "60/minute"
    # The store every replica counts in (docs/adr/0035), e.g. "redis://redis:6379/0": a
    # client then has its budget once, however many replicas. Empty: each replica counts
    # on its own (fine for a single gateway). Each store call may take
    # `redis_timeout_seconds` (connecting included); when the store fails or is slow,
    # requests are counted in this replica (fail open to per-replica budgets) until a
    # PING, tried every `redis_retry_seconds`, answers again.
    redis_url: str = ""
    redis_timeout_seconds: float = 0.1
    redis_retry_seconds: float = 2.0
    # The proxies in front of the gateway (docs/adr/0027), comma-separated addresses or
    # CIDR networks: only from these peers do X-Forwarded-For (the right-most address not
    # in this list is the client) and X-Forwarded-Proto count. Empty (the default): no
    # peer is a proxy; the client is the socket peer and the scheme the connection's.
    trusted_proxies: str = ""
    # CORS: the origins allowed to call the API from a browser, comma-separated (none by
    # default: browsers then refuse cross-origin calls).
    cors_allow_origins: str = ""
    # The merged OpenAPI is re-fetched from the backends when older than this.
    openapi_refresh_seconds: float = 30.0
    # Revocations (docs/adr/0007): the broker the revocation events come from (empty: no
    # consumer, the list is only seeded at start), this gateway's own queue (each replica
    # needs its own name: two gateways on one queue would each get half of the events;
    # empty, the default, names one for this process: `gateway.revocations.<host>.<random>`),
    # and the shared secret for auth's /internal endpoints.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    revocation_queue: str = ""
    # RabbitMQ deletes a revocation queue (and its dead-letter queue) nobody has consumed
    # or declared for this long (`x-expires`): the queue of a replica that is gone.
    revocation_queue_expires_seconds: int = 1800
    internal_token: str = ""
    access_token_ttl_seconds: int = 600
    revocations_startup_wait_seconds: float = 3.0
    # Personal access tokens (docs/adr/0042): how many exchanged tokens are cached, how
    # long before its access token expires an entry is exchanged again, and how often the
    # tokens' last uses are reported to auth.
    personal_token_cache_size: int = 10_000
    personal_token_refresh_margin_seconds: float = 30.0
    personal_token_flush_seconds: float = 60.0
    log_level: str = "INFO"
    # Prometheus metrics are served on this internal address only, never on the public
    # port (0: any free port, as tests use).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9000

    @property
    def upload_limit_bytes(self) -> int:
        """The most an attachment upload's body may be (file plus multipart overhead)."""
        return self.attachments_max_bytes + UPLOAD_OVERHEAD_BYTES

    def backend_urls(self, backend: Backend) -> tuple[str, ...]:
        """The base URLs of a backend's replicas, without trailing slashes."""
        urls: dict[Backend, str] = {
            "auth": self.auth_url,
            "projects": self.projects_url,
            "tickets": self.tickets_url,
            "notifications": self.notifications_url,
            "webhooks": self.webhooks_url,
        }
        found = tuple(url.strip().rstrip("/") for url in urls[backend].split(",") if url.strip())
        if not found:
            raise ValueError(f"no URL configured for the {backend} backend")
        return found

    def backend_url(self, backend: Backend) -> str:
        return self.backend_urls(backend)[0]

    def routing_table(self) -> dict[str, tuple[str, ...]]:
        """Path prefix -> the base URLs serving it, in matching order (for logs and docs)."""
        return {route.prefix: self.backend_urls(route.backend) for route in ROUTES}

    def trusted_proxy_networks(self) -> TrustedProxies:
        return TrustedProxies.parse(self.trusted_proxies)

    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]

    def all_backend_urls(self) -> dict[Backend, tuple[str, ...]]:
        return {backend: self.backend_urls(backend) for backend in BACKENDS}
