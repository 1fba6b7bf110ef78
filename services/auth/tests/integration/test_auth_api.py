from __future__ import annotations

import uuid

import httpx
import jwt
import pytest

PASSWORD = "plum lantern orbit quietly 47"

pytestmark = pytest.mark.integration


async def register(client: httpx.AsyncClient, email: str = "ann@example.com") -> httpx.Response:
    return await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Ann"},
    )


async def test_register_then_login_gives_a_token_with_every_contract_claim(
    auth_client: httpx.AsyncClient,
) -> None:
    created = await register(auth_client, "Ann@Example.com")
    assert created.status_code == 201
    user = created.json()
    assert user["email"] == "ann@example.com"
    assert created.headers["location"] == f"/api/v1/users/{user['id']}"
    assert "password" not in created.text

    login = await auth_client.post(
        "/api/v1/auth/login", json={"email": "ANN@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 600
    assert body["refresh_token"]
    assert login.headers["cache-control"] == "no-store"

    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    jwks = (await auth_client.get("/.well-known/jwks.json")).json()
    assert [key["kid"] for key in jwks["keys"]] == [header["kid"]]
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(
        body["access_token"],
        key,
        algorithms=["EdDSA"],
        audience="bugtracker",
        issuer="bugtracker-auth",
    )
    assert claims["sub"] == user["id"]
    assert claims["role"] == "member"
    assert claims["exp"] - claims["iat"] == 600
    assert {"sid", "jti"} <= claims.keys()

    me = await auth_client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_oauth2_form_login_works_like_json_login(auth_client: httpx.AsyncClient) -> None:
    await register(auth_client)
    response = await auth_client.post(
        "/api/v1/auth/token", data={"username": "ann@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


async def test_duplicate_email_is_409_whatever_the_case(auth_client: httpx.AsyncClient) -> None:
    assert (await register(auth_client)).status_code == 201
    again = await register(auth_client, "ANN@example.COM")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("email", "password"),
    [("ann@example.com", "wrong password but long"), ("nobody@example.com", PASSWORD)],
)
async def test_wrong_password_and_unknown_email_answer_the_same(
    auth_client: httpx.AsyncClient, email: str, password: str
) -> None:
    await register(auth_client)
    response = await auth_client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid_credentials"
    assert body["detail"] == "The email or password is not correct."


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b'{"email": "a@b.c",', 400, "malformed_json"),
        (
            b'{"email": "ann@example.com", "password": "short", "display_name": "A"}',
            422,
            "validation_error",
        ),
        (
            b'{"email": "not-an-email", "password": "correct horse battery", "display_name": "A"}',
            422,
            "validation_error",
        ),
        (
            b'{"email": "ann@example.com", "password": "correct horse battery", '
            b'"display_name": "A", "is_admin": true}',
            422,
            "validation_error",
        ),
        (
            b'{"email": 5, "password": "correct horse battery", "display_name": "A"}',
            422,
            "validation_error",
        ),
    ],
)
async def test_bad_registrations_are_problems_and_create_nothing(
    auth_client: httpx.AsyncClient, payload: bytes, status: int, code: str
) -> None:
    response = await auth_client.post(
        "/api/v1/auth/register", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["request_id"] == response.headers["x-request-id"]
    login = await auth_client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_user_profile_needs_a_valid_token(auth_client: httpx.AsyncClient) -> None:
    missing = await auth_client.get("/api/v1/users/me")
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthorized"
    garbage = await auth_client.get(
        "/api/v1/users/me", headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert garbage.status_code == 401
    assert garbage.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    unknown = await auth_client.get(f"/api/v1/users/{uuid.uuid4()}")
    assert unknown.status_code == 401


async def test_registration_writes_a_user_registered_event_to_the_outbox(
    auth_client: httpx.AsyncClient, superuser_db: object
) -> None:
    import asyncpg

    assert isinstance(superuser_db, asyncpg.Connection)
    user = (await register(auth_client)).json()
    row = await superuser_db.fetchrow(
        "SELECT routing_key, payload FROM auth.outbox WHERE aggregate_id = $1", user["id"]
    )
    assert row is not None
    assert row["routing_key"] == "user.registered"
    assert '"password' not in row["payload"]
