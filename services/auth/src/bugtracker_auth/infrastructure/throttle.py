"""Login throttling in process memory (see docs/adr/0006): per client IP, at most
`ip_failures` failed logins in a sliding `ip_window`; per account, after
`account_free_failures` consecutive failures every further try must wait a delay that
doubles up to `account_max_delay`. A success clears the account's record."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bugtracker_auth.domain.errors import RateLimitedError

V = TypeVar("V")


@dataclass
class _Account:
    failures: int
    last_failure: float


class InMemoryLoginThrottle:
    def __init__(
        self,
        *,
        ip_failures: int = 10,
        ip_window_seconds: float = 60.0,
        account_free_failures: int = 5,
        account_base_delay_seconds: float = 1.0,
        account_max_delay_seconds: float = 900.0,
        max_tracked: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ip_failures = ip_failures
        self._ip_window = ip_window_seconds
        self._free = account_free_failures
        self._base_delay = account_base_delay_seconds
        self._max_delay = account_max_delay_seconds
        self._max_tracked = max_tracked
        self._clock = clock
        self._ips: OrderedDict[str, deque[float]] = OrderedDict()
        self._accounts: OrderedDict[str, _Account] = OrderedDict()

    def _account_delay(self, failures: int) -> float:
        if failures < self._free:
            return 0.0
        return min(self._max_delay, self._base_delay * 2.0 ** (failures - self._free))

    def check(self, client_ip: str | None, email: str) -> None:
        now = self._clock()
        waits: list[float] = []
        if client_ip is not None and (failures := self._ips.get(client_ip)):
            while failures and failures[0] <= now - self._ip_window:
                failures.popleft()
            if len(failures) >= self._ip_failures:
                waits.append(failures[0] + self._ip_window - now)
        account = self._accounts.get(email)
        if account is not None:
            ready_at = account.last_failure + self._account_delay(account.failures)
            if ready_at > now:
                waits.append(ready_at - now)
        if waits:
            raise RateLimitedError(math.ceil(max(waits)))

    def failed(self, client_ip: str | None, email: str) -> None:
        now = self._clock()
        if client_ip is not None:
            self._ips.setdefault(client_ip, deque()).append(now)
            self._ips.move_to_end(client_ip)
            self._trim(self._ips)
        account = self._accounts.get(email)
        if account is None:
            self._accounts[email] = _Account(1, now)
        else:
            account.failures += 1
            account.last_failure = now
            self._accounts.move_to_end(email)
        self._trim(self._accounts)

    def succeeded(self, client_ip: str | None, email: str) -> None:  # noqa: ARG002
        # The IP's failures stay: one success must not reset a spray from that address.
        self._accounts.pop(email, None)

    def _trim(self, table: OrderedDict[str, V]) -> None:
        # Bounded memory under a spray of addresses: the least recently failing go first.
        while len(table) > self._max_tracked:
            table.popitem(last=False)
