"""RFC 8725 attacks on access tokens, refused by the gateway before any backend sees
them (the auth service has the same list in services/auth/tests), and revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bugtracker_gateway.main import create_app
from bugtracker_shared.events import raw_event
from bugtracker_testkit import app_client
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import OKPAlgorithm

Minter = Callable[..., str]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def valid_claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "bugtracker-auth",
        "aud": "bugtracker",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
        "role": "member",
    }


async def call(gateway: httpx.AsyncClient, token: str) -> httpx.Response:
    return await gateway.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})


def assert_refused(
    response: httpx.Response, backends: dict[str, Any], code: str = "invalid_token"
) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["code"] == code
    assert backends["projects"].proxied() == []


async def test_a_well_formed_token_passes(
    gateway: httpx.AsyncClient, backends: dict[str, Any], mint: Minter
) -> None:
    assert (await call(gateway, mint())).status_code == 200


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"lifetime_seconds": -60}, "token_expired"),
        ({"nbf": int(time.time()) + 3600}, "invalid_token"),
        ({"iat": int(time.time()) + 3600}, "invalid_token"),
        ({"iss": "someone-else"}, "invalid_token"),
        ({"aud": "another-api"}, "invalid_token"),
        ({"sub": None}, "invalid_token"),
        ({"exp": None}, "invalid_token"),
        ({"sid": None}, "invalid_token"),
        ({"headers": {"kid": "unknown-kid"}}, "invalid_token"),
        ({"headers": {"typ": "JWT"}}, "invalid_token"),
        ({"headers": {"typ": None}}, "invalid_token"),
    ],
    ids=[
        "expired",
        "nbf-in-future",
        "iat-in-future",
        "wrong-iss",
        "wrong-aud",
        "no-sub",
        "no-exp",
        "no-sid",
        "unknown-kid",
        "wrong-typ",
        "no-typ",
    ],
)
async def test_bad_claims_and_headers_are_refused(
    gateway: httpx.AsyncClient,
    backends: dict[str, Any],
    mint: Minter,
    claims: dict[str, Any],
    code: str,
) -> None:
    assert_refused(await call(gateway, mint(**claims)), backends, code)


async def test_alg_none_is_refused(gateway: httpx.AsyncClient, backends: dict[str, Any]) -> None:
    token = unsigned({"alg": "none", "typ": "at+jwt", "kid": "test-key-1"}, valid_claims()) + "."
    assert_refused(await call(gateway, token), backends)


async def test_hs256_signed_with_the_public_key_is_refused(
    gateway: httpx.AsyncClient, backends: dict[str, Any]
) -> None:
    jwks = (await gateway.get("/.well-known/jwks.json")).json()
    public = OKPAlgorithm.from_jwk(jwks["keys"][0])
    assert not hasattr(public, "private_bytes")
    for secret in (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ):
        signing_input = unsigned(
            {"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}, valid_claims()
        )
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_refused(await call(gateway, f"{signing_input}.{b64(signature)}"), backends)


async def test_a_tampered_payload_is_refused(
    gateway: httpx.AsyncClient, backends: dict[str, Any], mint: Minter
) -> None:
    header, _, signature = mint().split(".")
    forged = f"{header}.{b64(json.dumps(valid_claims() | {'role': 'admin'}).encode())}.{signature}"
    assert_refused(await call(gateway, forged), backends)


async def test_a_session_revoked_before_start_is_refused_from_the_seed(
    open_gateway: Callable[..., Any], backends: dict[str, Any], mint: Minter
) -> None:
    revoked, live = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    backends["auth"].revoked_sessions = [
        {
            "session_id": str(revoked),
            "user_id": str(uuid.uuid4()),
            "revoked_at": now.isoformat(),
            "forget_after": (now + timedelta(minutes=10)).isoformat(),
        }
    ]
    async with open_gateway() as gateway:
        assert_refused(await call(gateway, mint(sid=str(revoked))), backends, "token_revoked")
        assert (await call(gateway, mint(sid=str(live)))).status_code == 200
    assert backends["auth"].internal_token_seen[-1] == "gateway-test-internal-token"


@pytest.mark.parametrize("event_name", ["auth.session_revoked", "user.deactivated"])
async def test_a_revocation_event_refuses_an_already_cached_token_at_once(
    settings: Any, backends: dict[str, Any], mint: Minter, event_name: str
) -> None:
    """Revoked session and deactivated user: the token was verified and cached before."""
    app = create_app(settings)
    async with app_client(app) as gateway:
        await revoke_through_the_feed(app, gateway, backends, mint, event_name)


async def revoke_through_the_feed(
    app: Any, gateway: httpx.AsyncClient, backends: dict[str, Any], mint: Minter, event_name: str
) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token = mint(sub=str(user_id), sid=str(session_id))
    assert (await call(gateway, token)).status_code == 200
    backends["projects"].seen.clear()
    now = datetime.now(UTC)
    await app.state.revocations.on_event(
        raw_event(
            event_name,
            service="auth",
            subject=user_id,
            sequence=2,
            data={
                "user_id": str(user_id),
                "session_ids": [str(session_id)],
                "revoked_at": now.isoformat(),
                "forget_after": (now + timedelta(minutes=10)).isoformat(),
            },
            actor_id=None,
            correlation_id=None,
        )
    )

    assert_refused(await call(gateway, token), backends, "token_revoked")
    assert_refused(await call(gateway, token), backends, "token_revoked")  # every request
    assert (await call(gateway, mint(sub=str(user_id)))).status_code == 200


async def test_revocations_are_forgotten_after_their_horizon(mint: Minter) -> None:
    from bugtracker_gateway.revocations import RevokedSessions

    revoked = RevokedSessions(default_ttl_seconds=600)
    gone, kept = uuid.uuid4(), uuid.uuid4()
    revoked.add([gone], time.time() - 1)
    revoked.add([kept])
    assert gone not in revoked
    assert kept in revoked
    assert "not-a-uuid" not in revoked
