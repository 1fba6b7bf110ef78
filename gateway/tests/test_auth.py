from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

Minter = Callable[..., str]


def assert_unauthorized(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 401
    assert body["request_id"] == response.headers["x-request-id"]


async def test_no_token_is_401_and_no_backend_is_called(
    gateway: httpx.AsyncClient, backends: dict[str, Any]
) -> None:
    response = await gateway.get("/api/v1/projects")

    assert_unauthorized(response, "unauthorized")
    assert all(fake.seen == [] for fake in backends.values())


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer", "Bearer "],
)
async def test_a_garbage_authorization_header_is_401(
    gateway: httpx.AsyncClient, backends: dict[str, Any], authorization: str
) -> None:
    response = await gateway.get("/api/v1/projects", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert backends["projects"].seen == []


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"lifetime_seconds": -3600}, "token_expired"),
        ({"aud": "somebody-else"}, "invalid_token"),
        ({"iss": "someone-else"}, "invalid_token"),
        ({"role": "superuser"}, "invalid_token"),
        ({"sub": "not-a-uuid"}, "invalid_token"),
        ({"key": Ed25519PrivateKey.generate()}, "invalid_token"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "unknown-role", "bad-sub", "forged"],
)
async def test_a_token_that_fails_verification_is_401_and_the_backend_sees_nothing(
    gateway: httpx.AsyncClient,
    backends: dict[str, Any],
    mint: Minter,
    claims: dict[str, Any],
    code: str,
) -> None:
    token = mint(**claims)

    response = await gateway.post(
        "/api/v1/projects/PRJ/tickets",
        headers={"Authorization": f"Bearer {token}"},
        json={"title": "x"},
    )

    assert_unauthorized(response, code)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert backends["tickets"].seen == []
    assert backends["projects"].seen == []


async def test_a_valid_token_is_forwarded_unchanged(
    gateway: httpx.AsyncClient, backends: dict[str, Any], token: str
) -> None:
    response = await gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    [seen] = backends["auth"].proxied()
    assert seen.header("Authorization") == f"Bearer {token}"


async def test_the_signing_keys_are_fetched_once_and_reused(
    gateway: httpx.AsyncClient, backends: dict[str, Any], mint: Minter
) -> None:
    for _ in range(3):
        response = await gateway.get(
            "/api/v1/tickets", headers={"Authorization": f"Bearer {mint()}"}
        )
        assert response.status_code == 200

    assert backends["auth"].jwks_fetches == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/auth/jwks.json"),
        ("GET", "/.well-known/jwks.json"),
    ],
)
async def test_public_endpoints_pass_without_a_token(
    gateway: httpx.AsyncClient, backends: dict[str, Any], method: str, path: str
) -> None:
    response = await gateway.request(method, path)

    assert response.status_code == 200
    assert response.headers.get("x-backend", "auth") == "auth"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/register/extra"),
        ("POST", "/health"),
        ("GET", "/docs/../api/v1/projects"),
        ("GET", "/api/v1/notifications/unsubscribe"),
        ("POST", "/api/v1/notifications/unsubscribe/x"),
        ("POST", "/api/v1/notifications"),
    ],
)
async def test_only_the_listed_method_and_path_are_public(
    gateway: httpx.AsyncClient, backends: dict[str, Any], method: str, path: str
) -> None:
    response = await gateway.request(method, path)

    assert response.status_code == 401
    assert all(fake.proxied() == [] for fake in backends.values())


async def test_one_click_unsubscribe_passes_without_a_token_with_its_form_body(
    gateway: httpx.AsyncClient, backends: dict[str, Any]
) -> None:
    """RFC 8058: a mail client POSTs `List-Unsubscribe=One-Click` as a form, with no
    token; the signed link's query string is the credential, which notifications checks."""
    path = "/api/v1/notifications/unsubscribe?token=signed.link"
    response = await gateway.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert response.headers["x-backend"] == "notifications"
    [seen] = backends["notifications"].proxied()
    assert (seen.method, seen.path_qs, seen.body) == ("POST", path, b"List-Unsubscribe=One-Click")
    assert seen.header("content-type") == "application/x-www-form-urlencoded"
    assert seen.header("authorization") is None


async def test_auth_being_unreachable_for_the_keys_is_503_not_401(
    open_gateway: Callable[..., Any], dead_url: str, token: str
) -> None:
    # Nothing to wait for at start: the revocation list cannot be seeded from a dead auth.
    async with open_gateway(auth_url=dead_url, revocations_startup_wait_seconds=0.1) as gateway:
        response = await gateway.get(
            "/api/v1/projects", headers={"Authorization": f"Bearer {token}"}
        )

    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert response.headers["retry-after"] == "1"
