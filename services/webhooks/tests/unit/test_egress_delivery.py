"""Deliveries end to end against a real HTTP server on 127.0.0.1: the checked client, the
whole-exchange timeout, redirects, Retry-After and the per-host limit.

The endpoint's name (`hooks.example.test`) reaches the server only through a fake
resolver; the server records the Host header, SNI and how many requests it holds at once.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from bugtracker_webhooks.infrastructure.egress import (
    MAX_RESPONSE_BYTES,
    EgressPolicy,
    HostLimiter,
    delivery_client,
    post,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "hooks.example.test"
ALLOWED = EgressPolicy(frozenset({HOST}))
BODY = b'{"type":"ticket.created"}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}

Respond = Callable[[asyncio.StreamWriter], Awaitable[None]]


class FakeResolver:
    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.addresses = addresses
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.addresses[host]


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    respond: Respond
    port: int = 0
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def url(self, path: str = "/in", *, scheme: str = "http", host: str = HOST) -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, target, _ = request_line.split(" ")
            headers = {}
            for line in lines:
                if line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Seen(method, target, headers, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await self.respond(writer)
            finally:
                self.in_flight -= 1
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


def reply(
    status: int = 200,
    headers: dict[str, str] | None = None,
    body: bytes = b"ok",
    delay: float = 0.0,
) -> Respond:
    async def respond(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        head = f"HTTP/1.1 {status} Whatever\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        await writer.drain()

    return respond


@asynccontextmanager
async def serving(
    respond: Respond, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[LocalServer]:
    local = LocalServer(respond)
    if ssl_context is not None:

        def record_sni(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
            local.server_names.append(name)

        ssl_context.sni_callback = record_sni
    server = await asyncio.start_server(local.serve, "127.0.0.1", 0, ssl=ssl_context)
    local.port = server.sockets[0].getsockname()[1]
    try:
        yield local
    finally:
        server.close()
        await server.wait_closed()


def client(
    policy: EgressPolicy = ALLOWED,
    timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    resolver: FakeResolver | None = None,
) -> httpx.AsyncClient:
    return delivery_client(
        policy,
        timeout_seconds=timeout,
        resolver=resolver or FakeResolver({HOST: ["127.0.0.1"]}),
        ssl_context=ssl_context,
    )


async def test_a_post_reaches_the_checked_address_with_the_urls_host() -> None:
    resolver = FakeResolver({HOST: ["127.0.0.1"]})
    async with serving(reply(204, body=b"")) as server, client(resolver=resolver) as http:
        outcome = await post(http, server.url(), BODY, HEADERS, timeout_seconds=5)

    assert outcome.status == 204
    assert outcome.error is None
    assert outcome.succeeded
    assert outcome.duration_ms >= 0
    [seen] = server.requests
    assert (seen.method, seen.target, seen.body) == ("POST", "/in", BODY)
    assert seen.headers["host"] == f"{HOST}:{server.port}"
    assert seen.headers["webhook-id"] == "msg_1"
    assert resolver.calls == [HOST]


async def test_a_host_not_allowed_is_refused_before_any_connection() -> None:
    async with serving(reply()) as server, client(policy=EgressPolicy()) as http:
        plain = await post(http, server.url(), BODY, HEADERS, timeout_seconds=5)
        secure = await post(http, server.url(scheme="https"), BODY, HEADERS, timeout_seconds=5)

    assert plain.status is None
    assert plain.error is not None
    assert "https://" in plain.error
    assert not plain.succeeded
    assert secure.status is None
    assert secure.error is not None
    assert f"{HOST} resolves to 127.0.0.1" in secure.error
    assert "loopback" in secure.error
    assert server.connections == 0


async def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    async with serving(reply(302, {"Location": "/elsewhere"})) as server, client() as http:
        outcome = await post(http, server.url(), BODY, HEADERS, timeout_seconds=5)

    assert outcome.status == 302
    assert not outcome.succeeded
    assert outcome.error == "redirect to /elsewhere not followed"
    assert [seen.target for seen in server.requests] == ["/in"]


async def test_an_error_status_is_a_failure_and_passes_retry_after_back() -> None:
    async with serving(reply(503, {"Retry-After": "120"})) as server, client() as http:
        outcome = await post(http, server.url(), BODY, HEADERS, timeout_seconds=5)

    assert outcome.status == 503
    assert outcome.retry_after == "120"
    assert outcome.error is None
    assert not outcome.succeeded


async def test_a_slow_server_hits_the_timeout() -> None:
    async with serving(reply(delay=3)) as server, client() as http:
        outcome = await post(http, server.url(), BODY, HEADERS, timeout_seconds=0.3)

    assert outcome.status is None
    assert outcome.error == "no complete response within 0.3 s"
    assert 250 <= outcome.duration_ms < 2000


async def test_a_trickling_body_hits_the_timeout_of_the_whole_exchange() -> None:
    # Every read comes well within httpx's per-phase timeout; only the total is bounded.
    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with serving(trickle) as server, client(timeout=1.0) as http:
        outcome = await post(http, server.url(), BODY, HEADERS, timeout_seconds=1.0)

    assert outcome.status == 200
    assert outcome.error == "no complete response within 1 s"
    assert not outcome.succeeded


async def test_an_endless_body_is_read_no_further_than_the_cap() -> None:
    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (4096, b"x" * 4096)
        for _ in range(100_000):  # 400 MB
            writer.write(chunk)
            await writer.drain()

    async with serving(endless) as server, client() as http:
        outcome = await post(http, server.url(), BODY, HEADERS, timeout_seconds=5)

    assert outcome.succeeded
    assert outcome.duration_ms < 4000
    assert MAX_RESPONSE_BYTES == 64 * 1024


async def test_a_closed_port_is_a_connection_failure() -> None:
    async with serving(reply()) as server:
        url = server.url()
    async with client() as http:
        outcome = await post(http, url, BODY, HEADERS, timeout_seconds=5)

    assert outcome.status is None
    assert outcome.error is not None
    assert outcome.error.startswith("connection failed:")
    assert "Traceback" not in outcome.error


async def test_a_name_that_does_not_resolve_is_a_connection_failure() -> None:
    class Nowhere:
        async def resolve(self, host: str, port: int) -> list[str]:
            raise OSError("Name or service not known")

    policy = EgressPolicy()
    async with delivery_client(policy, timeout_seconds=5, resolver=Nowhere()) as http:
        outcome = await post(http, "https://nowhere.test/in", BODY, HEADERS, timeout_seconds=5)

    assert (
        outcome.error == "connection failed: cannot resolve nowhere.test: Name or service not known"
    )


async def test_the_host_limiter_bounds_requests_in_flight_at_the_server() -> None:
    limiter = HostLimiter(2)

    async def one(http: httpx.AsyncClient, url: str) -> bool:
        async with limiter.limit(HOST):
            return (await post(http, url, BODY, HEADERS, timeout_seconds=5)).succeeded

    async with serving(reply(delay=0.1)) as server, client() as http:
        results = await asyncio.gather(*(one(http, server.url()) for _ in range(8)))

    assert all(results)
    assert len(server.requests) == 8
    assert server.max_in_flight == 2
    assert len(limiter) == 0  # an idle host is forgotten


async def test_without_the_limiter_requests_pile_up() -> None:
    # The control of the test above: the server can see more than two at once.
    async with serving(reply(delay=0.1)) as server, client() as http:
        await asyncio.gather(
            *(post(http, server.url(), BODY, HEADERS, timeout_seconds=5) for _ in range(8))
        )

    assert server.max_in_flight > 2


async def test_the_limiter_is_per_host() -> None:
    limiter = HostLimiter(1)
    async with limiter.limit("a.example"), limiter.limit("B.example"):
        assert len(limiter) == 2
        waiting = asyncio.create_task(_enter(limiter, "b.EXAMPLE"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1)
    assert len(limiter) == 0


async def _enter(limiter: HostLimiter, host: str) -> None:
    async with limiter.limit(host):
        pass


def test_the_limiter_needs_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HostLimiter(0)


# TLS: a throwaway authority made with `cryptography` (trustme is not installed).


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def client_context(self) -> ssl.SSLContext:
        pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return ssl.create_default_context(cadata=pem)

    def server_context(self, name: str, directory: Path) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            # The name only: no IP address, so a check against 127.0.0.1 would fail.
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = directory / f"{name}.pem"
        chain.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain)
        return context


async def test_tls_verifies_the_certificate_and_sends_sni_for_the_urls_host(
    tmp_path: Path,
) -> None:
    authority = Authority.new()
    server_tls = authority.server_context(HOST, tmp_path)

    async with (
        serving(reply(), server_tls) as server,
        client(ssl_context=authority.client_context()) as http,
    ):
        outcome = await post(http, server.url(scheme="https"), BODY, HEADERS, timeout_seconds=5)

    assert outcome.error is None
    assert outcome.succeeded
    assert server.server_names == [HOST]
    assert server.requests[0].headers["host"] == f"{HOST}:{server.port}"


async def test_tls_refuses_a_certificate_for_another_name(tmp_path: Path) -> None:
    authority = Authority.new()
    server_tls = authority.server_context("other.example.test", tmp_path)

    async with (
        serving(reply(), server_tls) as server,
        client(ssl_context=authority.client_context()) as http,
    ):
        outcome = await post(http, server.url(scheme="https"), BODY, HEADERS, timeout_seconds=5)

    assert outcome.status is None
    assert outcome.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert HOST in outcome.error
    assert server.requests == []


async def test_tls_refuses_an_unknown_authority(tmp_path: Path) -> None:
    server_tls = Authority.new().server_context(HOST, tmp_path)

    async with (
        serving(reply(), server_tls) as server,
        client(ssl_context=Authority.new().client_context()) as http,
    ):
        outcome = await post(http, server.url(scheme="https"), BODY, HEADERS, timeout_seconds=5)

    assert outcome.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert server.requests == []
