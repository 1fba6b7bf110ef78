"""Wires the real adapters into the use cases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.tokens import TokenVerifier

from bugtracker_auth.application.use_cases import AuthUseCases
from bugtracker_auth.infrastructure.keys import JwtIssuer, KeyStore, OpaqueRefreshTokens
from bugtracker_auth.infrastructure.passwords import Argon2PasswordHasher
from bugtracker_auth.infrastructure.tables import SCHEMA, outbox
from bugtracker_auth.infrastructure.uow import AuthUnitOfWork
from bugtracker_auth.settings import Settings


def build(settings: Settings) -> tuple[ServiceRuntime, KeyStore, AuthUseCases]:
    keys = KeyStore(settings.keys_dir)
    keys.load()

    async def local_jwks() -> dict[str, Any]:
        return keys.jwks()

    runtime = ServiceRuntime.create(
        name="auth",
        database_url=settings.database_url,
        schema=SCHEMA,
        amqp_url=settings.amqp_url,
        pool_size=settings.db_pool_size,
        outbox=outbox,
        verifier=TokenVerifier(local_jwks, issuer=settings.issuer, audience=settings.audience),
    )
    use_cases = AuthUseCases(
        uow=lambda: AuthUnitOfWork(runtime.session_factory, runtime.after_commit),
        hasher=Argon2PasswordHasher(),
        tokens=JwtIssuer(
            keys,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        refresh_tokens=OpaqueRefreshTokens(),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        registration_open=settings.registration_open,
    )
    return runtime, keys, use_cases
