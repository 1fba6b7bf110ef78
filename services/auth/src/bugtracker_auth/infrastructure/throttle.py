"""Login throttling (see docs/adr/0006, 0028 and 0037). Three limits:

- per client IP: at most `ip_failures` failed logins in a sliding `ip_window`;
- per account *and* client (the pair): after `account_free_failures` consecutive
  failures every further try from that client must wait a delay that doubles up to
  `account_max_delay`. An attacker's failures slow the attacker's address, not the
  owner at theirs. A pair's failures are forgotten `account_memory` after its last one;
- per account across addresses: once `spread_addresses` different addresses have failed
  on the account within `spread_window` (a distributed guess), clients that are not
  known to the account wait until the oldest of them leaves the window. A client is
  known when it logged in to the account successfully within `known_client` (the
  remembered (account, client) pair): the owner's usual clients are never held back.

A success clears the pair's record and remembers the pair. The client is the client IP
(None, for a caller without one, counts as one client).

Two implementations of the one policy: `InMemoryLoginThrottle` (one process: the
counters are its own) and `RedisLoginThrottle` (the counters in Redis, shared by every
auth replica; ADR 0037). Both decide with the policy's clock; Redis's expiries only
collect what the clock has already made irrelevant."""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError

from bugtracker_auth.domain.errors import RateLimitedError, ThrottleUnavailableError

if TYPE_CHECKING:
    from redis.asyncio import Redis

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

logger = logging.getLogger("bugtracker.auth.throttle")


@dataclass
class _Failures:
    failures: int
    last_failure: float


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The three limits' knobs (see the module's docstring), and how many entries each
    table of the in-memory throttle may hold before the least recently used are
    forgotten."""

    ip_failures: int = 10
    ip_window_seconds: float = 60.0
    account_free_failures: int = 5
    account_base_delay_seconds: float = 1.0
    account_max_delay_seconds: float = 900.0
    account_memory_seconds: float = 24 * 3600.0
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

    @property
    def pair_memory_seconds(self) -> float:
        """A pair's failures are remembered at least as long as the delay they impose."""
        return max(self.account_memory_seconds, self.account_max_delay_seconds)

    @property
    def spread_limit(self) -> int:
        return max(1, self.spread_addresses)

    @property
    def ip_limit(self) -> int:
        return max(1, self.ip_failures)


class InMemoryLoginThrottle:
    """The counters in this process's memory: right for a single auth process only
    (each replica would give a guesser its own allowance)."""

    def __init__(
        self,
        policy: ThrottlePolicy = ThrottlePolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._clock = clock
        # Per IP: the newest `ip_failures` failures (only they decide the wait).
        self._ips: OrderedDict[str, deque[float]] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str | None], _Failures] = OrderedDict()
        # Per account: the most recent failing clients (at most `spread_addresses`),
        # oldest failure first.
        self._spread: OrderedDict[str, OrderedDict[str | None, float]] = OrderedDict()
        self._known: OrderedDict[tuple[str, str | None], float] = OrderedDict()

    def _is_known(self, pair: tuple[str, str | None], now: float) -> bool:
        succeeded_at = self._known.get(pair)
        return succeeded_at is not None and now - succeeded_at < self._policy.known_client_seconds

    def _pair_record(self, pair: tuple[str, str | None], now: float) -> _Failures | None:
        record = self._pairs.get(pair)
        if record is not None and now - record.last_failure >= self._policy.pair_memory_seconds:
            del self._pairs[pair]
            return None
        return record

    async def check(self, client_ip: str | None, email: str) -> None:
        policy = self._policy
        now = self._clock()
        waits: list[float] = []
        if client_ip is not None and (failures := self._ips.get(client_ip)):
            while failures and failures[0] <= now - policy.ip_window_seconds:
                failures.popleft()
            if len(failures) >= policy.ip_limit:
                waits.append(failures[0] + policy.ip_window_seconds - now)
        pair = (email, client_ip)
        record = self._pair_record(pair, now)
        if record is not None:
            ready_at = record.last_failure + policy.pair_delay(record.failures)
            if ready_at > now:
                waits.append(ready_at - now)
        spread = self._spread.get(email)
        if spread and not self._is_known(pair, now):
            while spread and next(iter(spread.values())) <= now - policy.spread_window_seconds:
                spread.popitem(last=False)
            if len(spread) >= policy.spread_limit:
                waits.append(next(iter(spread.values())) + policy.spread_window_seconds - now)
        if waits:
            raise RateLimitedError(math.ceil(max(waits)))

    async def failed(self, client_ip: str | None, email: str) -> None:
        now = self._clock()
        if client_ip is not None:
            self._ips.setdefault(client_ip, deque(maxlen=self._policy.ip_limit)).append(now)
            self._ips.move_to_end(client_ip)
            self._trim(self._ips)
        pair = (email, client_ip)
        record = self._pair_record(pair, now)
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
        while len(spread) > self._policy.spread_limit:
            spread.popitem(last=False)
        self._spread.move_to_end(email)
        self._trim(self._spread)

    async def succeeded(self, client_ip: str | None, email: str) -> None:
        # The IP's failures stay: one success must not reset a spray from that address.
        pair = (email, client_ip)
        self._pairs.pop(pair, None)
        if (spread := self._spread.get(email)) is not None:
            spread.pop(client_ip, None)
        self._known[pair] = self._clock()
        self._known.move_to_end(pair)
        self._trim(self._known)

    async def ping(self) -> None:
        """Nothing to reach: the counters are here."""

    async def close(self) -> None:
        pass

    def _trim(self, table: OrderedDict[K, V]) -> None:
        # Bounded memory under a spray of addresses: the least recently used go first.
        while len(table) > self._policy.max_tracked:
            table.popitem(last=False)


# Redis keys under KEY_PREFIX (ADR 0037); <account> is the SHA-256 of the normalized email
# (no email in plain text), <client> the client IP or "-" for none:
#   ip:<ip>                  sorted set: the IP's newest failures (member unique, score time)
#   pair:<account>:<client>  hash: failures, last (time of the last failure)
#   spread:<account>         sorted set: failing clients, score the time of their last failure
#   known:<account>:<client> string: time of the pair's last success
# Every key expires once the policy's clock can no longer find it relevant (the TTL is
# only garbage collection: every decision compares the stored times with `now`).
KEY_PREFIX = "bugtracker:auth:throttle:"
_NO_CLIENT = "-"

# Numbers go to Redis commands as strings with every digit (Lua would round to 14).
_LUA_COMMON = """
local function num(x) return string.format('%.17g', x) end
local function ms(x) return math.max(1, math.ceil(x * 1000)) end
"""

# KEYS: ip, pair, spread, known. ARGV: now, has_ip, ip_window, ip_limit, free failures,
# base delay, max delay, pair memory, spread limit, spread window, known seconds.
# Returns the longest wait (a string; "0" when the client may try now).
_CHECK = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[1])
local ip_window, ip_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local free, base, max_delay = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local pair_memory = tonumber(ARGV[8])
local spread_limit, spread_window = tonumber(ARGV[9]), tonumber(ARGV[10])
local known_seconds = tonumber(ARGV[11])
local wait = 0
if ARGV[2] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now - ip_window))
  local n = redis.call('ZCARD', KEYS[1])
  if n >= ip_limit then
    local oldest = redis.call('ZRANGE', KEYS[1], n - ip_limit, n - ip_limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + ip_window - now)
  end
end
local record = redis.call('HMGET', KEYS[2], 'failures', 'last')
if record[1] and record[2] then
  local failures, last = tonumber(record[1]), tonumber(record[2])
  if now - last < pair_memory and failures >= free then
    local ready = last + math.min(max_delay, base * 2 ^ (failures - free))
    wait = math.max(wait, ready - now)
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local known_at = redis.call('GET', KEYS[4])
  if not (known_at and now - tonumber(known_at) < known_seconds) then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', num(now - spread_window))
    if redis.call('ZCARD', KEYS[3]) >= spread_limit then
      local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
      wait = math.max(wait, tonumber(oldest[2]) + spread_window - now)
    end
  end
end
return num(wait)
"""
)

# KEYS: ip, pair, spread. ARGV: now, has_ip, failure id, ip window, ip limit, pair memory,
# spread limit, spread window, client.
_FAILED = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[1])
local ip_window, ip_limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local pair_memory = tonumber(ARGV[6])
local spread_limit, spread_window = tonumber(ARGV[7]), tonumber(ARGV[8])
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now - ip_window))
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(ip_limit + 1))
  redis.call('PEXPIRE', KEYS[1], ms(ip_window))
end
local failures = 1
local record = redis.call('HMGET', KEYS[2], 'failures', 'last')
if record[1] and record[2] and now - tonumber(record[2]) < pair_memory then
  failures = tonumber(record[1]) + 1
end
redis.call('HSET', KEYS[2], 'failures', failures, 'last', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ms(pair_memory))
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[9])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(spread_limit + 1))
redis.call('PEXPIRE', KEYS[3], ms(spread_window))
return failures
"""
)

# KEYS: pair, spread, known. ARGV: now, client, known seconds.
_SUCCEEDED = (
    _LUA_COMMON
    + """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ms(tonumber(ARGV[3])))
return 1
"""
)


def account_key(email: str) -> str:
    """The account's part of a key: the SHA-256 of the (normalized) email."""
    return hashlib.sha256(email.encode()).hexdigest()


class RedisLoginThrottle:
    """The same policy with its counters in Redis, shared by every auth replica: each call
    is one Lua script, one round trip, atomic. Any Redis error (unreachable, timeout,
    out of memory) raises `ThrottleUnavailableError`: throttling fails closed."""

    def __init__(
        self,
        client: Redis,
        policy: ThrottlePolicy = ThrottlePolicy(),
        *,
        clock: Callable[[], float] = time.time,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self._redis = client
        self._policy = policy
        self._clock = clock
        self._prefix = prefix
        self._check = client.register_script(_CHECK)
        self._failed = client.register_script(_FAILED)
        self._succeeded = client.register_script(_SUCCEEDED)

    def keys_of(self, client_ip: str | None, email: str) -> dict[str, str]:
        """The keys this client and account use: ip (if any), pair, spread, known."""
        account = account_key(email)
        client = client_ip if client_ip is not None else _NO_CLIENT
        keys = {
            "pair": f"{self._prefix}pair:{account}:{client}",
            "spread": f"{self._prefix}spread:{account}",
            "known": f"{self._prefix}known:{account}:{client}",
        }
        if client_ip is not None:
            keys["ip"] = f"{self._prefix}ip:{client_ip}"
        return keys

    # Without a client IP there is no ip key: the scripts get the pair's key in its place
    # (every key a script may touch is declared) and leave it alone (has_ip "0").

    async def check(self, client_ip: str | None, email: str) -> None:
        p = self._policy
        keys = self.keys_of(client_ip, email)
        wait = await self._run(
            self._check,
            [keys.get("ip", keys["pair"]), keys["pair"], keys["spread"], keys["known"]],
            [
                repr(self._clock()),
                "1" if client_ip is not None else "0",
                repr(p.ip_window_seconds),
                p.ip_limit,
                p.account_free_failures,
                repr(p.account_base_delay_seconds),
                repr(p.account_max_delay_seconds),
                repr(p.pair_memory_seconds),
                p.spread_limit,
                repr(p.spread_window_seconds),
                repr(p.known_client_seconds),
            ],
        )
        seconds = float(wait)
        if seconds > 0:
            raise RateLimitedError(math.ceil(seconds))

    async def failed(self, client_ip: str | None, email: str) -> None:
        p = self._policy
        keys = self.keys_of(client_ip, email)
        await self._run(
            self._failed,
            [keys.get("ip", keys["pair"]), keys["pair"], keys["spread"]],
            [
                repr(self._clock()),
                "1" if client_ip is not None else "0",
                uuid.uuid4().hex,
                repr(p.ip_window_seconds),
                p.ip_limit,
                repr(p.pair_memory_seconds),
                p.spread_limit,
                repr(p.spread_window_seconds),
                client_ip if client_ip is not None else _NO_CLIENT,
            ],
        )

    async def succeeded(self, client_ip: str | None, email: str) -> None:
        # The IP's failures stay: one success must not reset a spray from that address.
        keys = self.keys_of(client_ip, email)
        await self._run(
            self._succeeded,
            [keys["pair"], keys["spread"], keys["known"]],
            [
                repr(self._clock()),
                client_ip if client_ip is not None else _NO_CLIENT,
                repr(self._policy.known_client_seconds),
            ],
        )

    async def ping(self) -> None:
        """Raises when Redis does not answer (the readiness check)."""
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def _run(self, script: Any, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            logger.warning("login throttle store unavailable: %s", exc)
            raise ThrottleUnavailableError from exc
