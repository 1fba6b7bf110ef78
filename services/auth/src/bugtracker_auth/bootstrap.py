"""Wires the real adapters into the use cases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.tokens import TokenVerifier
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bugtracker_auth.application.personal_tokens import PersonalTokenUseCases
from bugtracker_auth.application.ports import ProjectDirectory
from bugtracker_auth.application.use_cases import AuthUseCases
from bugtracker_auth.infrastructure.keys import (
    JwtIssuer,
    KeyStore,
    OpaquePersonalAccessTokens,
    OpaqueRefreshTokens,
)
from bugtracker_auth.infrastructure.passwords import Argon2PasswordHasher, BundledCommonPasswords
from bugtracker_auth.infrastructure.projects_client import HttpProjectDirectory
from bugtracker_auth.infrastructure.tables import SCHEMA, outbox
from bugtracker_auth.infrastructure.throttle import (
    InMemoryLoginThrottle,
    RedisLoginThrottle,
    ThrottlePolicy,
)
from bugtracker_auth.infrastructure.uow import AuthUnitOfWork
from bugtracker_auth.settings import Settings

# What auth's connections are called in Redis's CLIENT LIST.
REDIS_CLIENT_NAME = "bugtracker-auth-throttle"


def login_throttle(settings: Settings) -> InMemoryLoginThrottle | RedisLoginThrottle:
    """In Redis when `redis_url` is set (shared by every replica), else in memory."""
    policy = ThrottlePolicy(
        ip_failures=settings.login_ip_failures_per_minute,
        account_free_failures=settings.login_account_free_failures,
        account_max_delay_seconds=settings.login_account_max_delay_seconds,
        account_memory_seconds=settings.login_account_memory_seconds,
        spread_addresses=settings.login_spread_addresses,
        spread_window_seconds=settings.login_spread_window_seconds,
        known_client_seconds=settings.login_known_client_seconds,
    )
    if not settings.redis_url:
        return InMemoryLoginThrottle(policy)
    client = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        # One immediate retry (a pooled connection Redis closed on restart), no backoff: a
        # login waits at most about two timeouts before its 503.
        retry=Retry(NoBackoff(), 1),
        client_name=REDIS_CLIENT_NAME,
    )
    return RedisLoginThrottle(client, policy)


def build(
    settings: Settings, *, projects_transport: httpx.AsyncBaseTransport | None = None
) -> tuple[ServiceRuntime, KeyStore, AuthUseCases, PersonalTokenUseCases]:
    keys = KeyStore(settings.keys_dir)
    keys.load()

    async def local_jwks() -> dict[str, Any]:
        return keys.jwks()

    runtime = ServiceRuntime.create(
        name="auth",
        settings=settings,
        schema=SCHEMA,
        outbox=outbox,
        # The keys are local: a new `kid` after a rotation is picked up at once.
        verifier=TokenVerifier(
            local_jwks,
            issuer=settings.issuer,
            audience=settings.audience,
            min_refetch_seconds=0.0,
        ),
    )
    throttle = login_throttle(settings)
    runtime.closers.append(throttle.close)
    if isinstance(throttle, RedisLoginThrottle):
        # No login can be served without its store (ADR 0037): auth is not ready then.
        runtime.readiness["throttle_store"] = throttle.ping
    # Projects answers /internal only to the internal token: without one, auth knows of
    # no shared projects and the directory finds exact emails only.
    projects: ProjectDirectory | None = None
    if settings.internal_token:
        client = service_client(
            settings.projects_url,
            timeout_seconds=settings.http_timeout_seconds,
            transport=projects_transport,
        )
        runtime.http_clients.append(client)
        projects = HttpProjectDirectory(client, settings.internal_token)

    def uow() -> AuthUnitOfWork:
        return AuthUnitOfWork(runtime.session_factory, runtime.after_commit)

    issuer = JwtIssuer(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    use_cases = AuthUseCases(
        uow=uow,
        hasher=Argon2PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
        ),
        tokens=issuer,
        refresh_tokens=OpaqueRefreshTokens(),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        session_max_lifetime=timedelta(seconds=settings.session_max_lifetime_seconds),
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        common_passwords=BundledCommonPasswords(),
        throttle=throttle,
        registration_open=settings.registration_open,
        projects=projects,
    )
    personal_tokens = PersonalTokenUseCases(
        uow=uow,
        tokens=issuer,
        secrets=OpaquePersonalAccessTokens(),
        revocation_horizon=use_cases.revocation_horizon,
        max_live_tokens=settings.max_personal_access_tokens,
    )
    return runtime, keys, use_cases, personal_tokens
