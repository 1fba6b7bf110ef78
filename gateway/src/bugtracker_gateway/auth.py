"""Access-token check in front of every backend: public endpoints are listed here,
everything else needs a valid `Authorization: Bearer` token (forwarded unchanged), or a
personal access token (`btp_...`), forwarded as the access token minted for it
(bugtracker_gateway.personal_tokens, docs/adr/0042). A token whose scopes lack `write`
may only GET and HEAD (403 `insufficient_scope`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import aiohttp
from bugtracker_shared.logs import bind_log_context
from bugtracker_shared.problems import ProblemError, problem_response
from bugtracker_shared.tokens import (
    InvalidTokenError,
    JwksFetcher,
    Principal,
    TokenVerifier,
    bearer_token,
)
from bugtracker_shared.web import insufficient_scope, missing_token, unauthorized
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bugtracker_gateway.backends import Backends
from bugtracker_gateway.personal_tokens import (
    ExchangeUnavailableError,
    PersonalTokens,
    is_personal_token,
)
from bugtracker_gateway.ratelimit import Limits, client_ip, rate_limited, remember_user
from bugtracker_gateway.revocations import RevokedSessions

JWKS_PATH = "/.well-known/jwks.json"
DOCS_ASSETS_PREFIX = "/docs/assets/"
# The verified caller, for what runs after the token check (the event streams' limits).
PRINCIPAL_SCOPE_KEY = "bugtracker.principal"

PUBLIC_ENDPOINTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/auth/jwks.json"),
        # RFC 8058 one-click unsubscribe: mail clients POST it without any token; the
        # signed link in the URL is the credential (the notifications service checks it).
        ("POST", "/api/v1/notifications/unsubscribe"),
        ("GET", JWKS_PATH),
        ("GET", "/health"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }
)
PUBLIC_PREFIXES: frozenset[tuple[str, str]] = frozenset({("GET", DOCS_ASSETS_PREFIX)})


def is_public(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    if (method, path) in PUBLIC_ENDPOINTS:
        return True
    return ".." not in path and any(
        method == public_method and path.startswith(prefix)
        for public_method, prefix in PUBLIC_PREFIXES
    )


def jwks_fetcher(backends: Backends, timeout_seconds: float) -> JwksFetcher:
    async def fetch() -> dict[str, Any]:
        async with backends.session("auth").get(
            backends.url("auth", JWKS_PATH),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            raise_for_status=True,
        ) as response:
            document: dict[str, Any] = await response.json()
            return document

    return fetch


def _keys_unavailable(exc: InvalidTokenError) -> bool:
    """The verifier could not fetch the keys: the token is not at fault, auth is."""
    return isinstance(exc.__cause__, aiohttp.ClientError | TimeoutError)


class AuthenticationMiddleware:
    """Rejects a non-public request without a valid access token before any routing.
    Its 401 answers count against the client address's `auth_failures` budget of
    `limiter` (when rate limits are on): over it, the answer is 429 instead."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        revoked: RevokedSessions | None = None,
        limiter: Limits | None = None,
        personal_tokens: PersonalTokens | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.revoked = revoked
        self.limiter = limiter
        self.personal_tokens = personal_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            principal, minted = await self._authenticate(Headers(scope=scope).get("authorization"))
            if not principal.may(scope["method"]):
                raise insufficient_scope()
        except ProblemError as problem:
            headers = dict(problem.headers or {})
            if problem.status == HTTPStatus.UNAUTHORIZED and self.limiter is not None:
                decision = await self.limiter.hit("auth_failures", "ip:" + client_ip(scope))
                if not decision.allowed:
                    await rate_limited(decision, scope["path"])(scope, receive, send)
                    return
                headers.update((k.decode(), v.decode()) for k, v in decision.headers())
            response = problem_response(
                problem.status,
                problem.code,
                problem.detail,
                instance=scope["path"],
                headers=headers,
            )
            await response(scope, receive, send)
            return
        if minted is not None:
            # The services see the access token minted for the personal token, never it.
            scope = dict(scope)
            scope["headers"] = [
                *((k, v) for k, v in scope["headers"] if k != b"authorization"),
                (b"authorization", b"Bearer " + minted.encode()),
            ]
        remember_user(scope, principal.user_id)  # the rate limit counts per user
        scope[PRINCIPAL_SCOPE_KEY] = principal
        bind_log_context(user_id=principal.user_id)
        await self.app(scope, receive, send)

    async def _authenticate(self, authorization: str | None) -> tuple[Principal, str | None]:
        """The verified caller, and the access token minted for a personal token."""
        token = bearer_token(authorization)
        if token is None:
            raise missing_token()
        minted = None
        try:
            if self.personal_tokens is not None and is_personal_token(token):
                exchanged = await self.personal_tokens.resolve(token)
                principal, minted = exchanged.principal, exchanged.access_token
            else:
                principal = await self.verifier.verify(token)
        except ExchangeUnavailableError as exc:
            raise ProblemError(
                503,
                "service_unavailable",
                "Personal access tokens cannot be checked right now; try again shortly.",
                headers={"Retry-After": "1"},
            ) from exc
        except InvalidTokenError as exc:
            if _keys_unavailable(exc):
                raise ProblemError(
                    503,
                    "service_unavailable",
                    "The signing keys cannot be fetched right now; try again shortly.",
                    headers={"Retry-After": "1"},
                ) from exc
            raise unauthorized(str(exc), exc.code) from exc
        # Separate from the verifier's cache on purpose: a cached token is checked too.
        if self.revoked is not None and principal.session_id in self.revoked:
            if minted is not None and self.personal_tokens is not None:
                self.personal_tokens.revoked([principal.session_id], None)
            raise unauthorized(
                "The session of this access token has ended; log in again.", "token_revoked"
            )
        return principal, minted
