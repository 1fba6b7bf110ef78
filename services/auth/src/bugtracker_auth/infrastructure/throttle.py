"""Login throttling in process memory (see docs/adr/0006 and 0028). Three limits:

- per client IP: at most `ip_failures` failed logins in a sliding `ip_window`;
- per account *and* client (the pair): after `account_free_failures` consecutive
  failures every further try from that client must wait a delay that doubles up to
  `account_max_delay`. An attacker's failures slow the attacker's address, not the
  owner at theirs;
- per account across addresses: once `spread_addresses` different addresses have failed
  on the account within `spread_window` (a distributed guess), clients that are not
  known to the account wait until the oldest of them leaves the window. A client is
  known when it logged in to the account successfully within `known_client` (the
  remembered (account, client) pair): the owner's usual clients are never held back.

A success clears the pair's record and remembers the pair. The client is the client IP
(None, for a caller without one, counts as one client)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from bugtracker_auth.domain.errors import RateLimitedError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Failures:
    failures: int
    last_failure: float


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The three limits' knobs (see the module's docstring), and how many entries each
    table may hold before the least recently used are forgotten."""

    ip_failures: int = 10
    ip_window_seconds: float = 60.0
    account_free_failures: int = 5
    account_base_delay_seconds: float = 1.0
    account_max_delay_seconds: float = 900.0
    spread_addresses: int = 10
    spread_window_seconds: float = 3600.0
    known_client_seconds: float = 30 * 24 * 3600.0
    max_tracked: int = 100_000

    def pair_delay(self, failures: int) -> float:
        """How long a client waits after its `failures`-th consecutive failure."""
        if failures < self.account_free_failures:
            return 0.0
        doubled = self.account_base_delay_seconds * 2.0 ** (failures - self.account_free_failures)
        return min(self.account_max_delay_seconds, doubled)


class InMemoryLoginThrottle:
    def __init__(
        self,
        policy: ThrottlePolicy = ThrottlePolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._spread_addresses = max(1, policy.spread_addresses)
        self._clock = clock
        self._ips: OrderedDict[str, deque[float]] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str | None], _Failures] = OrderedDict()
        # Per account: the most recent failing clients (at most `spread_addresses`),
        # oldest failure first.
        self._spread: OrderedDict[str, OrderedDict[str | None, float]] = OrderedDict()
        self._known: OrderedDict[tuple[str, str | None], float] = OrderedDict()

    def _is_known(self, pair: tuple[str, str | None], now: float) -> bool:
        succeeded_at = self._known.get(pair)
        return succeeded_at is not None and now - succeeded_at < self._policy.known_client_seconds

    def check(self, client_ip: str | None, email: str) -> None:
        policy = self._policy
        now = self._clock()
        waits: list[float] = []
        if client_ip is not None and (failures := self._ips.get(client_ip)):
            while failures and failures[0] <= now - policy.ip_window_seconds:
                failures.popleft()
            if len(failures) >= policy.ip_failures:
                waits.append(failures[0] + policy.ip_window_seconds - now)
        pair = (email, client_ip)
        record = self._pairs.get(pair)
        if record is not None:
            ready_at = record.last_failure + policy.pair_delay(record.failures)
            if ready_at > now:
                waits.append(ready_at - now)
        spread = self._spread.get(email)
        if spread and not self._is_known(pair, now):
            while spread and next(iter(spread.values())) <= now - policy.spread_window_seconds:
                spread.popitem(last=False)
            if len(spread) >= self._spread_addresses:
                waits.append(next(iter(spread.values())) + policy.spread_window_seconds - now)
        if waits:
            raise RateLimitedError(math.ceil(max(waits)))

    def failed(self, client_ip: str | None, email: str) -> None:
        now = self._clock()
        if client_ip is not None:
            self._ips.setdefault(client_ip, deque()).append(now)
            self._ips.move_to_end(client_ip)
            self._trim(self._ips)
        pair = (email, client_ip)
        record = self._pairs.get(pair)
        if record is None:
            self._pairs[pair] = _Failures(1, now)
        else:
            record.failures += 1
            record.last_failure = now
            self._pairs.move_to_end(pair)
        self._trim(self._pairs)
        spread = self._spread.setdefault(email, OrderedDict())
        spread[client_ip] = now
        spread.move_to_end(client_ip)
        while len(spread) > self._spread_addresses:
            spread.popitem(last=False)
        self._spread.move_to_end(email)
        self._trim(self._spread)

    def succeeded(self, client_ip: str | None, email: str) -> None:
        # The IP's failures stay: one success must not reset a spray from that address.
        pair = (email, client_ip)
        self._pairs.pop(pair, None)
        if (spread := self._spread.get(email)) is not None:
            spread.pop(client_ip, None)
        self._known[pair] = self._clock()
        self._known.move_to_end(pair)
        self._trim(self._known)

    def _trim(self, table: OrderedDict[K, V]) -> None:
        # Bounded memory under a spray of addresses: the least recently used go first.
        while len(table) > self._policy.max_tracked:
            table.popitem(last=False)
