"""The one access-token verifier: pinned algorithm, required claims, cached verification."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
import pytest
from bugtracker_shared.tokens import InvalidTokenError, TokenVerifier, bearer_token
from bugtracker_testkit import TokenMinter


class CountingJwks:
    """The JWKS endpoint, counting how often the verifier asks for it."""

    def __init__(self, minter: TokenMinter) -> None:
        self.minter = minter
        self.fetches = 0
        self.fail = False

    async def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        if self.fail:
            raise ConnectionError("auth is down")
        return self.minter.jwks()


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def jwks(minter: TokenMinter) -> CountingJwks:
    return CountingJwks(minter)


@pytest.fixture
def verifier(minter: TokenMinter, jwks: CountingJwks) -> TokenVerifier:
    return TokenVerifier(jwks, issuer=minter.issuer, audience=minter.audience)


async def test_a_valid_token_gives_the_principal(
    minter: TokenMinter, verifier: TokenVerifier
) -> None:
    user_id = uuid.uuid4()
    session_id = uuid.uuid4()
    token = minter.mint(user_id, role="admin", sid=str(session_id))
    principal = await verifier.verify(token)
    assert principal.user_id == user_id
    assert principal.session_id == session_id
    assert principal.is_admin
    assert principal.token == token


async def test_verified_tokens_are_cached_and_keys_fetched_once(
    minter: TokenMinter, verifier: TokenVerifier, jwks: CountingJwks
) -> None:
    token = minter.mint(uuid.uuid4())
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first
    await verifier.verify(minter.mint(uuid.uuid4()))
    assert jwks.fetches == 1


async def test_the_cache_is_bounded(minter: TokenMinter, jwks: CountingJwks) -> None:
    verifier = TokenVerifier(jwks, issuer=minter.issuer, audience=minter.audience, cache_size=1)
    first, second = minter.mint(uuid.uuid4()), minter.mint(uuid.uuid4())
    principal = await verifier.verify(first)
    await verifier.verify(second)
    # Evicted: verified again, so a new (equal, not identical) principal.
    again = await verifier.verify(first)
    assert again == principal
    assert again is not principal


async def test_an_expired_token_says_so(minter: TokenMinter, verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify(minter.mint(uuid.uuid4(), ttl_seconds=-60))
    assert caught.value.code == "token_expired"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"sid": None},  # a required claim missing
        {"jti": None},
        {"role": "superuser"},
        {"sub": "not-a-uuid"},
    ],
)
async def test_bad_claims_are_refused(
    minter: TokenMinter, verifier: TokenVerifier, overrides: dict[str, Any]
) -> None:
    claims = {k: v for k, v in overrides.items() if v is not None}
    token = minter.mint(uuid.uuid4(), **claims)
    if None in overrides.values():
        decoded = jwt.decode(token, options={"verify_signature": False})
        for name, value in overrides.items():
            if value is None:
                del decoded[name]
        # Re-signed with the minter's own key: well signed, but a claim is missing.
        token = jwt.encode(
            decoded,
            minter._key,
            algorithm="EdDSA",
            headers={"kid": minter.kid, "typ": "at+jwt"},
        )
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify(token)
    assert caught.value.code == "invalid_token"


async def test_the_algorithm_and_type_are_pinned(
    minter: TokenMinter, verifier: TokenVerifier
) -> None:
    claims = jwt.decode(minter.mint(uuid.uuid4()), options={"verify_signature": False})
    hs256 = jwt.encode(
        claims, "k" * 32, algorithm="HS256", headers={"kid": minter.kid, "typ": "at+jwt"}
    )
    untyped = jwt.encode(
        claims,
        minter._key,
        algorithm="EdDSA",
        headers={"kid": minter.kid, "typ": "JWT"},
    )
    no_kid = jwt.encode(claims, minter._key, algorithm="EdDSA", headers={"typ": "at+jwt"})
    for token in (hs256, untyped, no_kid, "not.a.jwt", "garbage"):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)


async def test_a_token_from_another_key_is_refused_without_hammering_the_jwks(
    verifier: TokenVerifier, jwks: CountingJwks
) -> None:
    stranger = TokenMinter()
    with pytest.raises(InvalidTokenError, match="unknown key"):
        await verifier.verify(stranger.mint(uuid.uuid4()))
    with pytest.raises(InvalidTokenError, match="unknown key"):
        await verifier.verify(stranger.mint(uuid.uuid4()))
    # An unknown kid triggers one refetch, then none within the minimum interval.
    assert jwks.fetches == 1


async def test_unreachable_keys_refuse_the_token(
    minter: TokenMinter, verifier: TokenVerifier, jwks: CountingJwks
) -> None:
    jwks.fail = True
    with pytest.raises(InvalidTokenError, match="cannot be fetched"):
        await verifier.verify(minter.mint(uuid.uuid4()))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected
