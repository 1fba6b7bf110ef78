from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

ONE_MIB = 1024 * 1024


async def test_method_path_query_and_body_are_forwarded(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.post(
        "/api/v1/projects/PRJ/tickets?labels=a%20b&labels=c&q=%C3%A9",
        headers={**auth_headers, "Content-Type": "application/json"},
        content=b'{"title": "Crash on save"}',
    )

    assert response.status_code == 200
    [seen] = backends["tickets"].proxied()
    assert seen.method == "POST"
    assert seen.path_qs == "/api/v1/projects/PRJ/tickets?labels=a%20b&labels=c&q=%C3%A9"
    assert seen.body == b'{"title": "Crash on save"}'
    assert seen.header("Content-Type") == "application/json"
    assert seen.header("Content-Length") == str(len(seen.body))


async def test_end_to_end_headers_pass_and_hop_by_hop_and_identity_headers_do_not(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.get(
        "/api/v1/tickets",
        headers={
            **auth_headers,
            "X-Custom": "kept",
            "Accept-Language": "fr",
            "X-User-Id": "00000000-0000-0000-0000-000000000001",
            "X-User-Role": "admin",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "listed in Connection",
            "Keep-Alive": "timeout=300",
            "TE": "trailers",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "Upgrade": "websocket",
            "X-Forwarded-Proto": "https",
        },
    )

    assert response.status_code == 200
    [seen] = backends["tickets"].proxied()
    assert seen.header("X-Custom") == "kept"
    assert seen.header("Accept-Language") == "fr"
    assert seen.header("Authorization") == auth_headers["Authorization"]
    for dropped in ("X-User-Id", "X-User-Role", "X-Drop-Me", "TE", "Proxy-Authorization"):
        assert seen.header(dropped) is None, dropped
    assert seen.header("Upgrade") is None
    assert seen.header("Keep-Alive") is None
    assert seen.header("Host") == backends["tickets"].url.removeprefix("http://")
    assert seen.header_values("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.header_values("X-Forwarded-Proto") == ["http"]


async def test_forwarded_for_is_replaced_by_the_client_address_not_extended(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    await gateway.get("/api/v1/tickets", headers={**auth_headers, "X-Forwarded-For": "10.0.0.7"})

    [seen] = backends["tickets"].proxied()
    assert seen.header_values("X-Forwarded-For") == ["127.0.0.1"]  # docs/adr/0027


async def test_the_clients_request_id_is_propagated_and_echoed(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.get(
        "/api/v1/notifications", headers={**auth_headers, "X-Request-ID": "client-req-0001"}
    )

    assert response.headers.get_list("x-request-id") == ["client-req-0001"]
    [seen] = backends["notifications"].proxied()
    assert seen.header_values("X-Request-ID") == ["client-req-0001"]


async def test_a_request_id_is_made_when_the_client_sends_none_or_an_insane_one(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.get(
        "/api/v1/notifications", headers={**auth_headers, "X-Request-ID": "<script>"}
    )

    request_id = response.headers["x-request-id"]
    assert request_id != "<script>"
    [seen] = backends["notifications"].proxied()
    assert seen.header_values("X-Request-ID") == [request_id]


async def test_the_backend_answer_comes_back_without_hop_by_hop_headers(
    gateway: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await gateway.get("/api/v1/projects", headers=auth_headers)

    assert response.status_code == 200
    assert response.headers["x-backend"] == "projects"
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert "proxy-agent" not in response.headers
    assert "keep-alive" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    assert response.json()["service"] == "projects"


async def test_redirects_are_passed_to_the_client_not_followed(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.get("/api/v1/projects/redirect", headers=auth_headers)

    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"
    assert len(backends["projects"].proxied()) == 1


async def test_an_event_stream_is_streamed_through(
    gateway: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    async with gateway.stream("GET", "/api/v1/notifications/stream", headers=auth_headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert "content-length" not in r.headers
        lines = [line async for line in r.aiter_lines() if line]

    assert lines == ['data: {"n": 1}', 'data: {"n": 2}']


async def test_a_body_of_exactly_the_limit_passes(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.post("/api/v1/projects", headers=auth_headers, content=b"x" * ONE_MIB)

    assert response.status_code == 200
    assert len(backends["projects"].proxied()[0].body) == ONE_MIB


async def test_a_body_over_the_limit_is_413_and_not_forwarded(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.post(
        "/api/v1/projects", headers=auth_headers, content=b"x" * (ONE_MIB + 1)
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert backends["projects"].proxied() == []


async def test_a_streamed_body_without_length_is_cut_at_the_limit(
    open_gateway: Callable[..., Any], backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 512

    async with open_gateway(max_body_bytes=2048) as gateway:
        response = await gateway.post("/api/v1/projects", headers=auth_headers, content=chunks())

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert backends["projects"].proxied() == []


async def test_a_backend_that_refuses_connections_is_a_fast_503(
    open_gateway: Callable[..., Any], dead_url: str, auth_headers: dict[str, str]
) -> None:
    async with open_gateway(tickets_url=dead_url) as gateway:
        started = time.monotonic()
        response = await gateway.get("/api/v1/tickets", headers=auth_headers)
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["request_id"] == response.headers["x-request-id"]
    assert elapsed < 2.0  # refused at once; nowhere near the 10 s backend timeout


async def test_a_backend_slower_than_the_timeout_is_504(
    open_gateway: Callable[..., Any], backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(backend_timeout_seconds=0.2) as gateway:
        response = await gateway.get("/api/v1/tickets/slow", headers=auth_headers)

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "gateway_timeout"
    assert len(backends["tickets"].proxied()) == 1


async def test_a_backend_that_hangs_up_without_answering_is_502(
    gateway: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await gateway.post("/api/v1/tickets/hangup", headers=auth_headers, json={})

    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "bad_gateway"


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "OPTIONS"])
async def test_every_method_is_proxied(
    gateway: httpx.AsyncClient,
    backends: dict[str, Any],
    auth_headers: dict[str, str],
    method: str,
) -> None:
    response = await gateway.request(method, "/api/v1/tickets/PRJ-1", headers=auth_headers)

    assert response.status_code == 200
    assert backends["tickets"].proxied()[0].method == method
