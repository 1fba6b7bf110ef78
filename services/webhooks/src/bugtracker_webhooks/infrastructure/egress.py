"""Deliveries to URLs chosen by users, without letting them reach inside the network.

A webhook's URL is an instruction to make a request from inside the deployment: aimed
at `http://169.254.169.254/` or `http://10.0.0.5:5432/` it would be a server-side
request forgery. So:

- `EgressPolicy.check_url` refuses what is wrong in the URL itself (a scheme other than
  https, credentials, an address literal of a refused range), when a webhook is saved
  and again before each request;
- the host name is resolved once per connection (`resolve_checked`), every address it
  resolves to is judged (`EgressPolicy.refused_address`), and the connection is made to
  the address that was judged, never to the name: a DNS answer that changes between the
  check and the connect (DNS rebinding) changes nothing. TLS is still started with the
  URL's host name (httpcore passes the origin's host as `server_hostname`, see
  `AsyncHTTPConnection._connect`), so SNI and certificate verification are those of the
  name, not of the address;
- redirects are never followed (a 3xx is a failed attempt), and no proxy is taken from
  the environment.

The operator may name hosts (`allowed_hosts`) that are exempt from all of it: a receiver
on the cluster's own network, or plain http in development.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
MAX_NAME_LENGTH = 253
# A host name as the URL parser leaves it (IDNA already applied): dot-separated labels of
# letters, digits, hyphens and (found in the wild) underscores.
_NAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# What is read of a response before it is dropped: an endpoint's answer is not kept, and
# a large (or endless) one must cost little.
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_CHARS = 300
MAX_RETRY_AFTER_CHARS = 100
KEEPALIVE_SECONDS = 5.0
MAX_KEEPALIVE_CONNECTIONS = 20

# Instance metadata services: they hand out cloud credentials to whoever asks from inside.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
# Ranges that are not public but that the `ipaddress` of Python 3.11 does not (or not in
# every patch release) flag as private or reserved.
_NOT_PUBLIC: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UrlRefusedError(ValueError):
    """A URL that deliveries may not be sent to; the message says why."""


class AddressRefusedError(UrlRefusedError):
    """The URL's host is, or resolves to, an address deliveries may not reach."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        if host == address:
            message = f"the address {address} is refused: {reason}"
        else:
            message = f"{host} resolves to {address}, which is refused: {reason}"
        super().__init__(message)
        self.host = host
        self.address = address
        self.reason = reason


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    """A host as the allowed list holds it: lower case, no final dot, an address in its
    canonical text (`::1`, not `0:0::1`) and without brackets."""
    address = _parse_address(host)
    if address is not None:
        return str(address)
    return host.strip().lower().removesuffix(".")


def _unwrapped(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, NAT64), if it does: it
    reaches that IPv4 address and is judged as it."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _refusal(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        inner = _unwrapped(address)
        if inner is not None:
            reason = _refusal(inner)
            return None if reason is None else f"it carries {inner}, {reason}"
    # In order: the first that holds is the reason given (a metadata address is
    # link-local too, but "metadata service" says more).
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata service"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        *(
            (address.version == network.version and address in network, reason)
            for network, reason in _NOT_PUBLIC
        ),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


class EgressPolicy:
    """Where deliveries may go: public https endpoints, and the operator's exceptions."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset()) -> None:
        self.allowed_hosts = frozenset(_normal_host(host) for host in allowed_hosts if host)

    @classmethod
    def from_setting(cls, text: str) -> EgressPolicy:
        """The policy of the comma-separated `allowed_hosts` setting."""
        return cls(frozenset(part.strip() for part in text.split(",") if part.strip()))

    def is_allowed_host(self, host: str) -> bool:
        return _normal_host(host) in self.allowed_hosts

    def refused_address(self, address: IPAddress | str) -> str | None:
        """Why deliveries may not reach the address, or None when they may."""
        parsed = _parse_address(address) if isinstance(address, str) else address
        if parsed is None:
            return "not an IP address"
        if str(parsed) in self.allowed_hosts:
            return None
        return _refusal(parsed)

    def check_url(self, url: str) -> None:
        """Raise UrlRefusedError unless the URL may receive deliveries, as far as can be
        told without resolving its host (resolve_checked does the rest)."""
        if len(url) > MAX_URL_LENGTH:
            raise UrlRefusedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
        # httpx's parser: the one that reads the URL when the request is made.
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UrlRefusedError(f"the URL is not valid: {exc}") from None
        if parsed.scheme not in {"http", "https"}:
            raise UrlRefusedError("the URL must start with https://")
        if parsed.userinfo:
            raise UrlRefusedError("the URL may not hold a user name or password")
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise UrlRefusedError("the URL has no host")
        if self.is_allowed_host(host):
            return
        if parsed.scheme != "https":
            raise UrlRefusedError("the URL must start with https://")
        address = _parse_address(host)
        if address is not None:
            reason = _refusal(address)
            if reason is not None:
                raise AddressRefusedError(host, str(address), reason)
        else:
            _check_name(host)


def _check_name(host: str) -> None:
    name = host.lower().removesuffix(".")
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise UrlRefusedError(f"the host {host} is not a valid name")
    last = name.rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last):
        # `127.1`, `2130706433`, `0x7f000001`: IPv4 in the forms inet_aton reads. What
        # they resolve to is judged anyway, but no real name looks like that.
        raise UrlRefusedError(f"the host {host} is an address in a non-standard form")
    if last == "localhost":
        # RFC 6761: always loopback; said now rather than at the first delivery.
        raise UrlRefusedError(f"the host {host} is a loopback name")


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of the host, in the order to try them; OSError when none."""
        ...


class SystemResolver:
    """The system's resolver (getaddrinfo, run in the loop's thread pool)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses: list[str] = []
        for *_, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        return addresses


async def resolve_checked(host: str, port: int, policy: EgressPolicy, resolver: Resolver) -> str:
    """The address to connect to for the host: resolved once, and only if no address
    it resolves to is refused (one bad answer among several is enough to refuse: which
    one a client would use is not ours to guess). An address literal is not resolved.

    Raises AddressRefusedError, or OSError when the name does not resolve."""
    literal = _parse_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        addresses = await resolver.resolve(host, port)
        if not addresses:
            raise OSError(f"{host} has no address")
    if not policy.is_allowed_host(host):
        for address in addresses:
            reason = policy.refused_address(address)
            if reason is not None:
                raise AddressRefusedError(host, address, reason)
    return addresses[0]


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting each TCP connection to the address
    `resolve_checked` judged for the origin's host instead of to the name."""

    def __init__(
        self,
        policy: EgressPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver: Resolver = resolver or SystemResolver()
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                address = await resolve_checked(host, port, self._policy, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109, ARG002 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"deliveries never use a Unix socket ({path})")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's errors as httpx's, the most specific first (as httpx's own transport does).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _PoolTransport(httpx.AsyncBaseTransport):
    """httpx's AsyncHTTPTransport, minus proxies and options, on a pool of our own making:
    httpx 0.28 cannot be given a network backend. Each request's URL is checked again
    here, so nothing reaches the pool that the policy refuses."""

    def __init__(self, pool: httpcore.AsyncConnectionPool, policy: EgressPolicy) -> None:
        self._pool = pool
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(str(request.url))
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("the delivery client sends only asynchronous bodies")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        if not isinstance(response.stream, AsyncIterable):
            raise TypeError("httpcore's asynchronous pool returned a synchronous body")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def delivery_client(
    policy: EgressPolicy,
    *,
    timeout_seconds: float,
    resolver: Resolver | None = None,
    max_connections: int = 100,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The HTTP client of deliveries: checked addresses, no redirects, no proxies from
    the environment, every phase bounded by `timeout_seconds` (`post` bounds the whole).

    `ssl_context` replaces the default (certifi's roots, certificates verified): tests
    give one trusting their own authority."""
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=min(MAX_KEEPALIVE_CONNECTIONS, max_connections),
        keepalive_expiry=KEEPALIVE_SECONDS,
        http1=True,
        http2=False,
        network_backend=CheckedNetworkBackend(policy, resolver),
    )
    return httpx.AsyncClient(
        transport=_PoolTransport(pool, policy),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_seconds),
    )


@dataclass(slots=True)
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = 0


class HostLimiter:
    """At most `per_host` requests at once to one host, whatever the number of its
    webhooks: a receiver is not flooded because many endpoints point at it."""

    def __init__(self, per_host: int) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be at least 1, not {per_host}")
        self._per_host = per_host
        self._slots: dict[str, _Slot] = {}

    def __len__(self) -> int:
        """The hosts with a request going or waiting (an idle host is forgotten)."""
        return len(self._slots)

    @contextlib.asynccontextmanager
    async def limit(self, host: str) -> AsyncIterator[None]:
        key = _normal_host(host)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(asyncio.Semaphore(self._per_host))
        slot.users += 1
        try:
            async with slot.semaphore:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[key]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt.

    `status` is the response's status when one came (None otherwise); `error` says, in a
    line for the delivery log, why the attempt failed when the status alone does not (no
    response, a timeout, a refused address, a redirect); `retry_after` is the raw
    `Retry-After` header (domain.retries.parse_retry_after reads it)."""

    status: int | None
    duration_ms: int
    error: str | None
    retry_after: str | None

    @property
    def succeeded(self) -> bool:
        return (
            self.error is None and self.status is not None and httpx.codes.is_success(self.status)
        )


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _described(exc: Exception) -> str:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting timed out",
            httpx.ReadTimeout: "waiting for the response timed out",
            httpx.WriteTimeout: "sending the request timed out",
            httpx.PoolTimeout: "no connection was free in time",
        }.get(type(exc), "timed out")
        return what
    if isinstance(exc, httpx.ConnectError):
        return _short(f"connection failed: {detail}", MAX_ERROR_CHARS)
    if isinstance(exc, httpx.RemoteProtocolError):
        return _short(f"invalid HTTP response: {detail}", MAX_ERROR_CHARS)
    if isinstance(exc, httpx.NetworkError):
        return _short(f"connection lost: {detail}", MAX_ERROR_CHARS)
    return _short(detail, MAX_ERROR_CHARS)


async def _drain(response: httpx.Response) -> None:
    """Read the body up to MAX_RESPONSE_BYTES, raw (a compressed body is not inflated),
    and drop it."""
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received >= MAX_RESPONSE_BYTES:
            break


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_seconds: float,
) -> Outcome:
    """One attempt: POST the body, wait for the answer within `timeout_seconds` in all
    (httpx's own timeouts are per phase: a server trickling a byte a second would never
    trip them). Never raises for what the network or the endpoint does."""
    started = time.monotonic()
    status: int | None = None
    retry_after: str | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                header = response.headers.get("retry-after")
                if header is not None:
                    retry_after = _short(header, MAX_RETRY_AFTER_CHARS)
                if response.is_redirect:
                    location = response.headers["location"]
                    error = _short(f"redirect to {location} not followed", MAX_ERROR_CHARS)
                await _drain(response)
    except TimeoutError:
        error = f"no complete response within {timeout_seconds:g} s"
    except UrlRefusedError as exc:
        error = _short(str(exc), MAX_ERROR_CHARS)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = _described(exc)
    duration_ms = round((time.monotonic() - started) * 1000)
    return Outcome(status=status, duration_ms=duration_ms, error=error, retry_after=retry_after)
