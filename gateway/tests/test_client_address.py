"""Who the client is (docs/adr/0027): X-Forwarded-For and X-Forwarded-Proto count only
from a trusted proxy, the backends see the address the gateway determined, and headers
a client could pass itself off with never reach them.

In-process, the peer of every request is 127.0.0.1 (httpx's ASGI transport)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from bugtracker_gateway.forwarding import TrustedProxies, client_address

JWKS = "/.well-known/jwks.json"  # public and anonymous: counted per client address


def remaining(response: httpx.Response) -> int:
    return int(response.headers["ratelimit"].split(";r=")[1].split(";")[0])


async def test_without_a_trusted_proxy_a_forwarded_for_shares_the_peers_bucket(
    open_gateway: Callable[..., Any],
) -> None:
    async with open_gateway(rate_limit="5/minute") as gateway:
        plain = [await gateway.get(JWKS) for _ in range(2)]
        spoofed = [
            await gateway.get(JWKS, headers={"X-Forwarded-For": f"6.6.6.{n}"}) for n in range(4)
        ]

    assert [remaining(r) for r in plain + spoofed[:3]] == [4, 3, 2, 1, 0]
    assert spoofed[3].status_code == 429  # no fresh bucket per made-up address


async def test_a_trusted_proxys_forwarded_for_names_the_client(
    open_gateway: Callable[..., Any], backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(rate_limit="5/minute", trusted_proxies="127.0.0.1") as gateway:
        first = await gateway.get(JWKS, headers={"X-Forwarded-For": "203.0.113.7"})
        # Whatever the client wrote before the address the proxy appended is not trusted.
        again = await gateway.get(JWKS, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
        other = await gateway.get(JWKS, headers={"X-Forwarded-For": "198.51.100.1"})
        proxy_itself = await gateway.get(JWKS)
        await gateway.get(
            "/api/v1/tickets",
            headers={**auth_headers, "X-Forwarded-For": "6.6.6.6, 203.0.113.7, 127.0.0.1"},
        )

    assert [remaining(r) for r in (first, again, other, proxy_itself)] == [4, 3, 4, 4]
    [seen] = backends["tickets"].proxied()
    assert seen.header_values("X-Forwarded-For") == ["203.0.113.7"]


async def test_the_backend_sees_the_address_the_gateway_determined_not_the_clients(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    await gateway.get(
        "/api/v1/tickets",
        headers=[
            *auth_headers.items(),
            ("X-Forwarded-For", "10.0.0.7"),
            ("X-Forwarded-For", "6.6.6.6"),
        ],
    )

    [seen] = backends["tickets"].proxied()
    assert seen.header_values("X-Forwarded-For") == ["127.0.0.1"]


async def test_headers_a_client_could_pass_itself_off_with_are_dropped(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    await gateway.post(
        "/api/v1/auth/login",
        json={},
        headers={
            "X-Internal-Token": "guessed",
            "Forwarded": "for=6.6.6.6;proto=https",
            "X-Real-IP": "6.6.6.6",
            "X-Forwarded-Host": "evil.example.com",
            "X-Forwarded-Port": "443",
            "X-Custom": "kept",
        },
    )

    [seen] = backends["auth"].proxied()
    for dropped in (
        "X-Internal-Token",
        "Forwarded",
        "X-Real-IP",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
    ):
        assert seen.header(dropped) is None, dropped
    assert seen.header("X-Custom") == "kept"


async def test_a_clients_forwarded_proto_alone_neither_turns_on_hsts_nor_reaches_the_backend(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.get(
        "/api/v1/tickets", headers={**auth_headers, "X-Forwarded-Proto": "https"}
    )

    assert response.status_code == 200
    assert "strict-transport-security" not in response.headers
    [seen] = backends["tickets"].proxied()
    assert seen.header_values("X-Forwarded-Proto") == ["http"]


async def test_a_trusted_proxys_forwarded_proto_turns_on_hsts_and_is_passed_on(
    open_gateway: Callable[..., Any], backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(trusted_proxies="10.0.0.0/8, 127.0.0.1") as gateway:
        response = await gateway.get(
            "/api/v1/tickets", headers={**auth_headers, "X-Forwarded-Proto": "https"}
        )

    assert response.headers["strict-transport-security"].startswith("max-age=")
    [seen] = backends["tickets"].proxied()
    assert seen.header_values("X-Forwarded-Proto") == ["https"]


def test_the_right_most_untrusted_address_is_the_client() -> None:
    trusted = TrustedProxies.parse("10.0.0.0/8, 192.0.2.1, ::1")

    assert client_address("10.1.2.3", ["6.6.6.6, 203.0.113.9, 10.0.0.2"], trusted) == (
        "203.0.113.9"
    )
    assert client_address("::1", ["2001:db8::7"], trusted) == "2001:db8::7"
    # Only proxies on the way: the farthest one is as close to the client as is known.
    assert client_address("192.0.2.1", ["10.0.0.9, 10.0.0.2"], trusted) == "10.0.0.9"
    # No header, or a peer that is not a trusted proxy: the peer.
    assert client_address("10.0.0.2", [], trusted) == "10.0.0.2"
    assert client_address("198.51.100.5", ["6.6.6.6"], trusted) == "198.51.100.5"
    assert client_address("198.51.100.5", ["6.6.6.6"], TrustedProxies.parse("")) == ("198.51.100.5")
