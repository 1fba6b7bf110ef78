"""Wires the real adapters into the use cases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.tokens import TokenVerifier

from bugtracker_auth.application.ports import ProjectDirectory
from bugtracker_auth.application.use_cases import AuthUseCases
from bugtracker_auth.infrastructure.keys import JwtIssuer, KeyStore, OpaqueRefreshTokens
from bugtracker_auth.infrastructure.passwords import Argon2PasswordHasher, BundledCommonPasswords
from bugtracker_auth.infrastructure.projects_client import HttpProjectDirectory
from bugtracker_auth.infrastructure.tables import SCHEMA, outbox
from bugtracker_auth.infrastructure.throttle import InMemoryLoginThrottle, ThrottlePolicy
from bugtracker_auth.infrastructure.uow import AuthUnitOfWork
from bugtracker_auth.settings import Settings


def build(
    settings: Settings, *, projects_transport: httpx.AsyncBaseTransport | None = None
) -> tuple[ServiceRuntime, KeyStore, AuthUseCases]:
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
    use_cases = AuthUseCases(
        uow=lambda: AuthUnitOfWork(runtime.session_factory, runtime.after_commit),
        hasher=Argon2PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
        ),
        tokens=JwtIssuer(
            keys,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        refresh_tokens=OpaqueRefreshTokens(),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        session_max_lifetime=timedelta(seconds=settings.session_max_lifetime_seconds),
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        common_passwords=BundledCommonPasswords(),
        throttle=InMemoryLoginThrottle(
            ThrottlePolicy(
                ip_failures=settings.login_ip_failures_per_minute,
                account_free_failures=settings.login_account_free_failures,
                account_max_delay_seconds=settings.login_account_max_delay_seconds,
                spread_addresses=settings.login_spread_addresses,
                spread_window_seconds=settings.login_spread_window_seconds,
                known_client_seconds=settings.login_known_client_seconds,
            )
        ),
        registration_open=settings.registration_open,
        projects=projects,
    )
    return runtime, keys, use_cases
