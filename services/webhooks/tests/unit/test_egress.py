"""The SSRF defence: which URLs and addresses deliveries may reach, and that the address
judged is the one connected to."""

from __future__ import annotations

from typing import Any

import httpcore
import pytest
from bugtracker_webhooks.infrastructure.egress import (
    AddressRefusedError,
    CheckedNetworkBackend,
    EgressPolicy,
    SystemResolver,
    UrlRefusedError,
    resolve_checked,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
NO_EXCEPTIONS = EgressPolicy()


class FakeResolver:
    """Answers from a script, one answer per call (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where it was asked to connect."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, **_: Any) -> httpcore.AsyncNetworkStream:  # type: ignore[override]
        self.connected.append((host, port))
        return httpcore.AsyncMockStream([])


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address judged, not bound)
        ("::", "unspecified"),
        ("0.1.2.3", "private"),  # "this network"
        ("240.0.0.1", "private"),  # reserved for future use (3.11 flags it private too)
        ("255.255.255.255", "private"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("192.0.0.8", "IETF protocol"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("2001::1", "private"),  # Teredo
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
    ],
)
def test_every_class_of_internal_address_is_refused(address: str, reason: str) -> None:
    refusal = NO_EXCEPTIONS.refused_address(address)

    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1, a loopback"),
        ("::ffff:10.0.0.1", "10.0.0.1, a private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:7f00:1::", "127.0.0.1, a loopback"),  # 6to4
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "127.0.0.1, a loopback"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
    ],
)
def test_ipv4_wrapped_in_ipv6_is_judged_as_ipv4(address: str, reason: str) -> None:
    refusal = NO_EXCEPTIONS.refused_address(address)

    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize(
    "address",
    [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address: str) -> None:
    assert NO_EXCEPTIONS.refused_address(address) is None


def test_a_non_address_is_refused() -> None:
    assert NO_EXCEPTIONS.refused_address("example.com") == "not an IP address"


def test_an_allowed_address_is_not_refused() -> None:
    policy = EgressPolicy.from_setting(" 10.0.0.5 , [0:0::1], Hooks.Internal. ,")

    assert policy.allowed_hosts == frozenset({"10.0.0.5", "::1", "hooks.internal"})
    assert policy.refused_address("10.0.0.5") is None
    assert policy.refused_address("::1") is None
    assert policy.refused_address("10.0.0.6") is not None
    assert policy.is_allowed_host("HOOKS.internal")
    assert policy.is_allowed_host("hooks.internal.")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "https://hooks.example.com:8443/in?x=1",
        "https://bücher.de/in",
        "https://_dmarc.a-b.example.com./in",
        "https://1password.com/in",
        f"https://{PUBLIC_V4}/in",
        f"https://[{PUBLIC_V6}]/in",
    ],
)
def test_public_https_urls_pass(url: str) -> None:
    NO_EXCEPTIONS.check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/in", "https://"),
        ("ftp://hooks.example.com/in", "https://"),
        ("file:///etc/passwd", "https://"),
        ("hooks.example.com/in", "https://"),
        ("https://user:pw@hooks.example.com/in", "user name or password"),
        ("https://user@hooks.example.com/in", "user name or password"),
        ("https:///in", "no host"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than 2048"),
        ("https://127.0.0.1/in", "loopback"),
        ("https://[::ffff:169.254.169.254]/latest", "cloud metadata"),
        ("https://localhost/in", "loopback name"),
        ("https://api.localhost./in", "loopback name"),
        ("https://exa mple.com/", "not a valid name"),
        ("https://a..b/", "not a valid name"),
        ("https://-a.example/", "not a valid name"),
        ("https://2130706433/", "non-standard form"),
        ("https://127.1/", "non-standard form"),
        ("https://0x7f000001/", "non-standard form"),
        ("https://ex\tample.com/", "not valid"),
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(UrlRefusedError, match=reason):
        NO_EXCEPTIONS.check_url(url)


def test_an_allowed_host_may_use_plain_http_and_an_internal_address() -> None:
    policy = EgressPolicy(frozenset({"hooks.internal", "127.0.0.1"}))

    policy.check_url("http://hooks.internal:8080/in")
    policy.check_url("http://127.0.0.1:9000/in")
    with pytest.raises(UrlRefusedError, match="https://"):
        policy.check_url("http://other.internal/in")
    with pytest.raises(UrlRefusedError, match="user name"):
        policy.check_url("http://u:p@hooks.internal/in")


async def test_one_refused_address_among_the_answers_refuses_the_host() -> None:
    resolver = FakeResolver([PUBLIC_V4, "10.0.0.1"])

    with pytest.raises(AddressRefusedError) as caught:
        await resolve_checked("hooks.example.com", 443, NO_EXCEPTIONS, resolver)

    assert caught.value.address == "10.0.0.1"
    assert caught.value.host == "hooks.example.com"
    assert "private" in str(caught.value)
    assert "hooks.example.com resolves to 10.0.0.1" in str(caught.value)


async def test_the_first_address_is_used_when_all_pass() -> None:
    resolver = FakeResolver([PUBLIC_V6, PUBLIC_V4])

    address = await resolve_checked("hooks.example.com", 443, NO_EXCEPTIONS, resolver)

    assert address == PUBLIC_V6
    assert resolver.calls == [("hooks.example.com", 443)]


async def test_an_address_literal_is_not_resolved() -> None:
    resolver = FakeResolver(["10.0.0.1"])

    assert await resolve_checked(PUBLIC_V4, 443, NO_EXCEPTIONS, resolver) == PUBLIC_V4
    with pytest.raises(AddressRefusedError, match="loopback"):
        await resolve_checked("127.0.0.1", 443, NO_EXCEPTIONS, resolver)
    assert resolver.calls == []


async def test_an_allowed_name_may_resolve_to_anything() -> None:
    policy = EgressPolicy(frozenset({"hooks.internal"}))
    resolver = FakeResolver(["10.0.0.7", "127.0.0.1"])

    assert await resolve_checked("hooks.internal", 80, policy, resolver) == "10.0.0.7"


async def test_a_name_without_addresses_is_an_os_error() -> None:
    with pytest.raises(OSError, match="no address"):
        await resolve_checked("nowhere.example.com", 443, NO_EXCEPTIONS, FakeResolver([]))


async def test_the_system_resolver_refuses_localhost() -> None:
    addresses = await SystemResolver().resolve("localhost", 80)

    assert addresses
    with pytest.raises(AddressRefusedError, match="loopback"):
        await resolve_checked("localhost", 80, NO_EXCEPTIONS, SystemResolver())


async def test_each_connection_resolves_once_and_connects_to_the_checked_address() -> None:
    # DNS rebinding: a public answer for the check, then loopback for whoever asks next.
    resolver = FakeResolver([PUBLIC_V4], ["127.0.0.1"])
    sockets = RecordingBackend()
    backend = CheckedNetworkBackend(NO_EXCEPTIONS, resolver, inner=sockets)

    await backend.connect_tcp("hooks.example.com", 443, timeout=5.0)

    assert resolver.calls == [("hooks.example.com", 443)]
    assert sockets.connected == [(PUBLIC_V4, 443)]

    # The next connection resolves anew, and its loopback answer is refused unconnected.
    with pytest.raises(AddressRefusedError, match="loopback"):
        await backend.connect_tcp("hooks.example.com", 443, timeout=5.0)
    assert len(resolver.calls) == 2
    assert sockets.connected == [(PUBLIC_V4, 443)]


async def test_a_failed_resolution_is_a_connect_error() -> None:
    class Failing:
        async def resolve(self, host: str, port: int) -> list[str]:
            raise OSError("Name or service not known")

    backend = CheckedNetworkBackend(NO_EXCEPTIONS, Failing(), inner=RecordingBackend())

    with pytest.raises(httpcore.ConnectError, match=r"cannot resolve nowhere\.test"):
        await backend.connect_tcp("nowhere.test", 443)


async def test_a_slow_resolution_is_a_connect_timeout() -> None:
    class Slow:
        async def resolve(self, host: str, port: int) -> list[str]:
            import asyncio

            await asyncio.sleep(10)
            return [PUBLIC_V4]

    sockets = RecordingBackend()
    backend = CheckedNetworkBackend(NO_EXCEPTIONS, Slow(), inner=sockets)

    with pytest.raises(httpcore.ConnectTimeout):
        await backend.connect_tcp("slow.example.com", 443, timeout=0.05)
    assert sockets.connected == []
