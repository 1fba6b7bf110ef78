"""Access-token verification shared by the gateway and every service.

The algorithm is pinned to EdDSA, every claim of the contract is required, and the
issuer, audience and `typ` header are checked. Verified tokens are cached until they
expire (bounded LRU keyed by a hash of the token), because EdDSA verification costs
about 200 µs on this hardware.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "jti", "iat", "exp", "role")
ROLES = ("admin", "member")
# Scopes of a token minted for a personal access token (its optional `scope` claim, space
# separated as in RFC 8693); a token without the claim is a session's, with every scope.
READ_SCOPE = "read"
WRITE_SCOPE = "write"
SCOPES = (READ_SCOPE, WRITE_SCOPE)
# What a principal without the `write` scope may still do.
READ_METHODS = frozenset({"GET", "HEAD"})

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
INVALID = "The access token is invalid."  # why exactly is logged, never told the client
KEYS_UNAVAILABLE = "The signing keys cannot be fetched right now."

logger = logging.getLogger("bugtracker.tokens")


class InvalidTokenError(Exception):
    """The token cannot be accepted; `code` tells a client why."""

    def __init__(self, detail: str, code: str = "invalid_token") -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as an access token proves it."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    token: str
    # The `scope` claim of a token minted for a personal access token (docs/adr/0042);
    # None for a session's token, which may do everything its user may.
    scopes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_personal_token(self) -> bool:
        """The token was minted for a personal access token (`sid` is that token's id)."""
        return self.scopes is not None

    def may(self, method: str) -> bool:
        """Whether the token's scopes allow a request of this HTTP method: without
        `write`, only GET and HEAD."""
        return self.scopes is None or WRITE_SCOPE in self.scopes or method in READ_METHODS


class SigningKeys:
    """The issuer's public keys by `kid`, from its JWKS document. A `kid` not yet known
    makes one fetch, at most every `min_refetch_seconds` (after a failed fetch, every
    `min_refetch_after_failure_seconds`), however many tokens name unknown keys."""

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        min_refetch_seconds: float,
        min_refetch_after_failure_seconds: float,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._min_refetch = min_refetch_seconds
        self._min_refetch_after_failure = min_refetch_after_failure_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        # The last fetch's error while it is the latest attempt: a failed fetch is timed
        # too, so unknown `kid`s do not make one fetch each while auth is down.
        self._fetch_error: Exception | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            pause = (
                self._min_refetch if self._fetch_error is None else self._min_refetch_after_failure
            )
            recently = self._fetched_at is not None and time.monotonic() - self._fetched_at < pause
            if key is None and not recently:
                await self._refresh()
                key = self._keys.get(kid)
            elif key is None and self._fetch_error is not None:
                raise InvalidTokenError(KEYS_UNAVAILABLE) from self._fetch_error
        if key is None:
            raise InvalidTokenError("The access token was signed by an unknown key.")
        return key

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            document = await self._fetch_jwks()
        except Exception as exc:
            logger.warning("the signing keys cannot be fetched: %r", exc)
            self._fetch_error = exc
            raise InvalidTokenError(KEYS_UNAVAILABLE) from exc
        self._fetch_error = None
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("kid") and entry.get("kty") == "OKP" and entry.get("crv") == "Ed25519":
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        self._keys = keys


class TokenVerifier:
    """Verifies access tokens against the issuer's `SigningKeys`, and caches the verified
    ones until they expire."""

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 5,
        cache_size: int = 10_000,
        min_refetch_seconds: float = 30.0,
        min_refetch_after_failure_seconds: float = 5.0,
    ) -> None:
        self._keys = SigningKeys(
            fetch_jwks,
            min_refetch_seconds=min_refetch_seconds,
            min_refetch_after_failure_seconds=min_refetch_after_failure_seconds,
        )
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        now = time.time()
        if cached is not None:
            principal, expires_at = cached
            if now < expires_at + self._leeway:
                self._cache.move_to_end(digest)
                return principal
            del self._cache[digest]
        principal, expires_at = await self._verify_uncached(token)
        self._cache[digest] = (principal, expires_at)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("The access token is malformed.") from exc
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise InvalidTokenError("The access token has the wrong algorithm or type.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("The access token names no signing key.")
        key = await self._keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("The access token has expired.", "token_expired") from exc
        except jwt.PyJWTError as exc:
            logger.info("access token refused: %s", exc)
            raise InvalidTokenError(INVALID) from exc
        try:
            principal = Principal(
                user_id=uuid.UUID(str(claims["sub"])),
                session_id=uuid.UUID(str(claims["sid"])),
                role=str(claims["role"]),
                token=token,
                scopes=_scopes(claims.get("scope")),
            )
        except ValueError as exc:
            raise InvalidTokenError("The access token has malformed claims.") from exc
        if principal.role not in ROLES:
            raise InvalidTokenError("The access token has an unknown role.")
        return principal, float(claims["exp"])


def _scopes(claim: object) -> frozenset[str] | None:
    """The `scope` claim as a set (None when absent); anything but a space-separated string
    of known scopes is a malformed claim."""
    if claim is None:
        return None
    if not isinstance(claim, str):
        raise ValueError("the scope claim is not a string")
    scopes = frozenset(claim.split())
    if not scopes or not scopes <= set(SCOPES):
        raise ValueError("the scope claim names an unknown scope")
    return scopes


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
