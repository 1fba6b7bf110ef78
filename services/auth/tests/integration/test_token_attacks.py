"""RFC 8725 attacks on access tokens, against the auth service's own verification (the
gateway has the same list in gateway/tests/test_token_attacks.py). Every forged token is
otherwise valid: it names a real user and a live session."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})


def assert_refused(response: httpx.Response, code: str = "invalid_token") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["code"] == code


async def test_a_token_signed_like_auth_signs_is_accepted(
    auth_client: httpx.AsyncClient, kit: Any, sign: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    assert (await me(auth_client, sign(kit.claims_of(ann)))).status_code == 200


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"exp": int(time.time()) - 60}, "token_expired"),
        ({"nbf": int(time.time()) + 3600}, "invalid_token"),
        ({"iat": int(time.time()) + 3600}, "invalid_token"),
        ({"iss": "someone-else"}, "invalid_token"),
        ({"aud": "another-api"}, "invalid_token"),
        ({"sub": None}, "invalid_token"),
        ({"exp": None}, "invalid_token"),
        ({"sid": None}, "invalid_token"),
        ({"jti": None}, "invalid_token"),
        ({"role": "superuser"}, "invalid_token"),
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
        "no-jti",
        "unknown-role",
    ],
)
async def test_bad_claims_are_refused(
    auth_client: httpx.AsyncClient, kit: Any, sign: Any, changes: dict[str, Any], code: str
) -> None:
    ann = await kit.register_and_login(auth_client)
    assert_refused(await me(auth_client, sign(kit.claims_of(ann, **changes))), code)


async def test_alg_none_is_refused(auth_client: httpx.AsyncClient, kit: Any) -> None:
    ann = await kit.register_and_login(auth_client)
    header = {
        "alg": "none",
        "typ": "at+jwt",
        "kid": jwt.get_unverified_header(ann.tokens["access_token"])["kid"],
    }
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(kit.claims_of(ann)).encode())}."
    assert_refused(await me(auth_client, token))


async def test_hs256_signed_with_the_public_key_is_refused(
    auth_client: httpx.AsyncClient, kit: Any
) -> None:
    """Algorithm confusion: the public key (as published) used as an HMAC secret."""
    ann = await kit.register_and_login(auth_client)
    jwks = (await auth_client.get("/.well-known/jwks.json")).json()
    public = jwt.PyJWK(jwks["keys"][0]).key
    for secret in (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ):
        header = {"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}
        signing_input = (
            f"{b64(json.dumps(header).encode())}.{b64(json.dumps(kit.claims_of(ann)).encode())}"
        )
        import hashlib
        import hmac

        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_refused(await me(auth_client, f"{signing_input}.{b64(signature)}"))


async def test_unknown_kid_and_wrong_typ_are_refused(
    auth_client: httpx.AsyncClient, kit: Any, sign: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    assert_refused(await me(auth_client, sign(kit.claims_of(ann), headers={"kid": "nope"})))
    assert_refused(await me(auth_client, sign(kit.claims_of(ann), headers={"typ": "JWT"})))
    assert_refused(await me(auth_client, sign(kit.claims_of(ann), headers={"typ": None})))


async def test_a_tampered_payload_is_refused(auth_client: httpx.AsyncClient, kit: Any) -> None:
    ann = await kit.register_and_login(auth_client)
    header, payload, signature = ann.tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert_refused(await me(auth_client, forged))


async def test_a_revoked_session_and_a_deactivated_user_are_refused(
    auth_client: httpx.AsyncClient, kit: Any, superuser_db: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    bob = await kit.register_and_login(auth_client, "bob")
    assert (await me(auth_client, ann.tokens["access_token"])).status_code == 200  # cached now
    await auth_client.post("/api/v1/auth/logout", headers=ann.headers)
    assert_refused(await me(auth_client, ann.tokens["access_token"]), "token_revoked")

    await superuser_db.execute("UPDATE auth.users SET is_active = false WHERE id = $1", bob.user_id)
    assert_refused(await me(auth_client, bob.tokens["access_token"]), "token_revoked")


async def test_key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    auth_client: httpx.AsyncClient, kit: Any, auth_settings: Any
) -> None:
    from bugtracker_auth.cli import rotate_keys

    ann = await kit.register_and_login(auth_client)
    old_kid = jwt.get_unverified_header(ann.tokens["access_token"])["kid"]

    rotate_keys(auth_settings)

    fresh = await kit.login(auth_client, ann.email)
    new_kid = jwt.get_unverified_header(fresh.tokens["access_token"])["kid"]
    assert new_kid != old_kid
    published = [k["kid"] for k in (await auth_client.get("/.well-known/jwks.json")).json()["keys"]]
    assert published == [new_kid, old_kid]
    assert (await me(auth_client, ann.tokens["access_token"])).status_code == 200
    assert (await me(auth_client, fresh.tokens["access_token"])).status_code == 200
