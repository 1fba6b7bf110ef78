"""Personal access tokens at the gateway (docs/adr/0042).

A bearer value starting with `btp_` is not a JWT: the gateway exchanges it once at auth
(`POST /internal/tokens/exchange`, with the internal token) for a short access token of
the owner (`sid` = the token's id, `scope` = its scopes), verifies that like any other,
and caches both under the SHA-256 of the personal token until shortly before the access
token expires. Concurrent requests with the same token wait for one exchange. The
request goes on with the minted access token in place of the personal token, so the
services verify a normal JWT. A revocation of the token's id (the revocation list)
evicts its entry. Uses are remembered (token id -> last use) and reported to auth in one
call every `flush_seconds`; auth writes `last_used_at` at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import aiohttp
from bugtracker_shared.tokens import InvalidTokenError, Principal, TokenVerifier
from prometheus_client import Counter

from bugtracker_gateway.backends import Backends

logger = logging.getLogger("bugtracker.gateway.personal_tokens")

TOKEN_PREFIX = "btp_"  # noqa: S105 (a prefix, not a secret)
EXCHANGE_PATH = "/internal/tokens/exchange"
USED_PATH = "/internal/tokens/used"
INVALID = "The personal access token is not valid."

EXCHANGES = Counter(
    "bugtracker_gateway_personal_token_exchanges_total",
    "Exchanges of personal access tokens at auth, by outcome (ok, invalid, unavailable).",
    ["outcome"],
)


def is_personal_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


class ExchangeUnavailableError(Exception):
    """Auth could not answer the exchange: the token is not at fault (503)."""


@dataclass(frozen=True, slots=True)
class Exchanged:
    principal: Principal
    access_token: str
    # time.monotonic() after which the entry is exchanged again.
    refresh_at: float


class PersonalTokens:
    def __init__(
        self,
        backends: Backends,
        verifier: TokenVerifier,
        *,
        internal_token: str,
        timeout_seconds: float,
        cache_size: int = 10_000,
        refresh_margin_seconds: float = 30.0,
        flush_seconds: float = 60.0,
    ) -> None:
        self._backends = backends
        self._verifier = verifier
        self._internal_token = internal_token
        self._timeout = timeout_seconds
        self._cache_size = cache_size
        self._margin = refresh_margin_seconds
        self._flush_seconds = flush_seconds
        self._cache: OrderedDict[bytes, Exchanged] = OrderedDict()
        self._by_token_id: dict[uuid.UUID, bytes] = {}
        self._pending: dict[bytes, asyncio.Task[Exchanged]] = {}
        # Token id -> when it was last used (wall clock), not yet reported to auth.
        self._used: dict[uuid.UUID, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.exchanges = 0  # calls made to auth (the tests count them)
        # The backends' sessions add no Content-Type of their own (they pass bytes through).
        self._headers = {
            "X-Internal-Token": internal_token,
            "Content-Type": "application/json",
        }

    async def resolve(self, token: str) -> Exchanged:
        """The principal and minted access token of a live personal token; raises
        `InvalidTokenError` (401) or `ExchangeUnavailableError` (503)."""
        digest = hashlib.sha256(token.encode()).digest()
        entry = self._cache.get(digest)
        if entry is None or time.monotonic() >= entry.refresh_at:
            entry = await self._single_flight(digest, token)
        else:
            self._cache.move_to_end(digest)
        self._used[entry.principal.session_id] = time.time()
        return entry

    async def _single_flight(self, digest: bytes, token: str) -> Exchanged:
        """One exchange per token at a time, in a task of its own: every request with the
        token waits for it, and a request that goes away does not cancel it for the rest."""
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.create_task(self._exchange_and_store(digest, token))
            self._pending[digest] = pending
        return await asyncio.shield(pending)

    async def _exchange_and_store(self, digest: bytes, token: str) -> Exchanged:
        try:
            entry = await self._exchange(token)
        except InvalidTokenError:
            self._forget(digest)
            raise
        finally:
            self._pending.pop(digest, None)
        self._store(digest, entry)
        return entry

    async def _exchange(self, token: str) -> Exchanged:
        self.exchanges += 1
        try:
            async with self._backends.session("auth").post(
                self._backends.url("auth", EXCHANGE_PATH),
                json={"token": token},
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                if response.status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND):
                    if response.status == HTTPStatus.NOT_FOUND:
                        logger.warning("auth refused the exchange itself (the internal token?)")
                    EXCHANGES.labels("invalid").inc()
                    raise InvalidTokenError(INVALID)
                if response.status != HTTPStatus.OK:
                    raise ExchangeUnavailableError(f"auth answered {response.status}")
                answer: dict[str, Any] = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            EXCHANGES.labels("unavailable").inc()
            raise ExchangeUnavailableError(repr(exc)) from exc
        access_token = str(answer["access_token"])
        principal = await self._verifier.verify(access_token)
        lifetime = float(answer["expires_in"])
        EXCHANGES.labels("ok").inc()
        return Exchanged(
            principal=principal,
            access_token=access_token,
            refresh_at=time.monotonic() + max(0.0, lifetime - self._margin),
        )

    def _store(self, digest: bytes, entry: Exchanged) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        self._by_token_id[entry.principal.session_id] = digest
        while len(self._cache) > self._cache_size:
            _, dropped = self._cache.popitem(last=False)
            self._by_token_id.pop(dropped.principal.session_id, None)

    def _forget(self, digest: bytes) -> None:
        entry = self._cache.pop(digest, None)
        if entry is not None:
            self._by_token_id.pop(entry.principal.session_id, None)

    def revoked(self, session_ids: Collection[uuid.UUID], user_id: uuid.UUID | None) -> None:
        """A revocation-list listener: the entries of revoked token ids go at once."""
        del user_id  # a deactivation lists the user's token ids among its sessions
        for session_id in session_ids:
            digest = self._by_token_id.pop(session_id, None)
            if digest is not None:
                self._cache.pop(digest, None)
            self._used.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._cache)

    # -- last use -------------------------------------------------------------------------

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="personal-token-uses")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        """Report the uses since the last report in one call; kept for the next one when
        auth cannot take them."""
        if not self._used:
            return
        used, self._used = self._used, {}
        uses = [
            {"id": str(token_id), "used_at": datetime.fromtimestamp(at, UTC).isoformat()}
            for token_id, at in used.items()
        ]
        try:
            async with self._backends.session("auth").post(
                self._backends.url("auth", USED_PATH),
                json={"uses": uses},
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                raise_for_status=True,
            ):
                pass
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("reporting %d token use(s) failed: %r", len(uses), exc)
            for token_id, at in used.items():
                self._used[token_id] = max(at, self._used.get(token_id, 0.0))

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        with contextlib.suppress(Exception):
            await self.flush()
