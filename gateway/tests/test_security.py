"""CORS, security headers, unknown paths, replicas and the gateway's own probes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bugtracker_gateway.backends import Replicas

ORIGIN = "https://app.example.com"


async def test_every_answer_carries_the_security_headers_and_no_server(
    gateway: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for response in (
        await gateway.get("/api/v1/tickets", headers=auth_headers),
        await gateway.get("/api/v1/tickets"),  # 401 from the gateway itself
        await gateway.get("/docs"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "server" not in response.headers
        assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_auth_answers_are_not_stored(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})

    assert response.headers.get_list("cache-control") == ["no-store"]


async def test_hsts_only_when_the_request_came_over_tls(
    open_gateway: Callable[..., Any], auth_headers: dict[str, str]
) -> None:
    # Over TLS as a trusted proxy says (docs/adr/0027); a client's own claim:
    # test_client_address.py.
    async with open_gateway(trusted_proxies="127.0.0.1") as gateway:
        behind_tls = await gateway.get(
            "/api/v1/tickets", headers={**auth_headers, "X-Forwarded-Proto": "https"}
        )

    assert behind_tls.headers["strict-transport-security"].startswith("max-age=")


async def test_no_cross_origin_calls_by_default(gateway: httpx.AsyncClient) -> None:
    preflight = await gateway.options(
        "/api/v1/tickets",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )

    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


async def test_an_allowed_origin_passes_the_preflight_and_a_foreign_one_does_not(
    open_gateway: Callable[..., Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(cors_allow_origins=f"{ORIGIN}, https://other.example") as gateway:
        allowed = await gateway.options(
            "/api/v1/tickets",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        denied = await gateway.options(
            "/api/v1/tickets",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        simple = await gateway.get("/api/v1/tickets", headers={**auth_headers, "Origin": ORIGIN})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "ratelimit" in simple.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("path", ["/nowhere", "/api/v2/tickets", "/api/v1/../health"])
async def test_an_unknown_path_is_a_404_problem(
    gateway: httpx.AsyncClient, auth_headers: dict[str, str], path: str
) -> None:
    response = await gateway.get(path, headers=auth_headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_only_the_gateways_own_paths_skip_the_proxy(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    not_forwarded = await gateway.request("TRACE", "/api/v1/tickets", headers=auth_headers)
    not_a_probe = await gateway.post("/health/live", headers=auth_headers)
    asset_head = await gateway.head("/docs/assets/swagger-ui.css")
    asset_post = await gateway.post("/docs/assets/swagger-ui.css", headers=auth_headers)

    assert not_forwarded.status_code == 405
    assert not_forwarded.json()["code"] == "method_not_allowed"
    assert set(not_forwarded.headers["allow"].split(", ")) == {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }
    assert not_a_probe.status_code == 404  # the proxy's answer: no backend serves it
    assert not_a_probe.json()["code"] == "not_found"
    assert asset_head.status_code == 200
    assert asset_post.status_code == 405
    assert backends["tickets"].proxied() == []


async def test_the_gateways_own_probes(gateway: httpx.AsyncClient) -> None:
    live = await gateway.get("/health/live")
    ready = await gateway.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")


async def test_ready_waits_for_the_revocation_list_but_not_for_the_backends(
    open_gateway: Callable[..., Any], backends: dict[str, Any], dead_url: str
) -> None:
    backends["projects"].ready = False
    async with open_gateway(notifications_url=dead_url) as gateway:
        ready = await gateway.get("/health/ready")
    async with open_gateway(auth_url=dead_url, revocations_startup_wait_seconds=0.1) as unseeded:
        not_ready = await unseeded.get("/health/ready")

    assert ready.status_code == 200
    assert not_ready.status_code == 503


async def test_requests_go_round_robin_over_the_replicas(
    open_gateway: Callable[..., Any], backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    urls = f"{backends['tickets'].url},{backends['projects'].url}"
    async with open_gateway(tickets_url=urls) as gateway:
        for _ in range(4):
            assert (await gateway.get("/api/v1/tickets", headers=auth_headers)).status_code == 200

    assert len(backends["tickets"].proxied()) == 2
    assert len(backends["projects"].proxied()) == 2


async def test_a_replica_that_refuses_is_skipped_and_the_request_still_served(
    open_gateway: Callable[..., Any],
    backends: dict[str, Any],
    auth_headers: dict[str, str],
    dead_url: str,
) -> None:
    async with open_gateway(tickets_url=f"{dead_url},{backends['tickets'].url}") as gateway:
        answers = [await gateway.get("/api/v1/tickets", headers=auth_headers) for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert len(backends["tickets"].proxied()) == 5


def test_a_replica_marked_down_comes_back_after_the_pause() -> None:
    now = [100.0]
    replicas = Replicas(("http://a", "http://b"), down_seconds=5.0, clock=lambda: now[0])
    replicas.mark_down("http://a")

    assert [replicas.next() for _ in range(3)] == ["http://b"] * 3
    now[0] += 5.0
    assert {replicas.next() for _ in range(2)} == {"http://a", "http://b"}
    replicas.mark_down("http://a")
    replicas.mark_down("http://b")
    assert replicas.next() in {"http://a", "http://b"}  # all down: try one anyway


def test_a_comma_separated_url_list_and_the_routing_table(settings: Any) -> None:
    changed = settings.model_copy(update={"auth_url": "http://a1:8001/, http://a2:8001"})

    assert changed.backend_urls("auth") == ("http://a1:8001", "http://a2:8001")
    assert changed.routing_table()["/api/v1/users"] == ("http://a1:8001", "http://a2:8001")
