"""Ed25519 signing keys kept as PEM files outside the database (a mounted Secret in
Kubernetes, `.data/keys` locally). The newest file signs; every file is published in the
JWKS, so tokens signed by the previous key stay valid after a rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from bugtracker_auth.domain.personal_tokens import TOKEN_PREFIX
from bugtracker_auth.domain.users import Session, User


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint, used as the key id."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    )


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created: float

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}


class KeyStore:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._keys: list[SigningKey] = []
        self._seen = 0

    def load(self, *, create_if_missing: bool = True) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        self._seen = self._directory_state()
        keys = [self._read(path) for path in self._directory.glob("*.pem")]
        if not keys and create_if_missing:
            keys = [self.generate()]
        if not keys:
            raise RuntimeError(f"no signing key in {self._directory}")
        self._keys = sorted(keys, key=lambda k: k.created, reverse=True)

    def _directory_state(self) -> int:
        return self._directory.stat().st_mtime_ns

    def reload_if_changed(self) -> None:
        """Pick up a key added by `bugtracker-auth rotate-keys` while this process runs
        (one `stat` per call; the directory's mtime changes when a file is added)."""
        try:
            changed = self._directory_state() != self._seen
        except OSError:
            return
        if changed:
            self.load(create_if_missing=False)

    def generate(self) -> SigningKey:
        private_key = Ed25519PrivateKey.generate()
        kid = _thumbprint(private_key.public_key())
        path = self._directory / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{kid}.pem"
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written under another name and renamed: a running process that rereads the
        # directory never sees a half-written key.
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        partial.rename(path)
        return self._read(path)

    @staticmethod
    def _read(path: Path) -> SigningKey:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError(f"{path} is not an Ed25519 key")
        # Files are named after their creation time; a mounted Secret gives every file
        # the same mtime, so the name, not the mtime, orders them.
        stamp = path.name.split("-", 1)[0]
        try:
            created = datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).timestamp()
        except ValueError:
            created = path.stat().st_mtime
        return SigningKey(
            kid=_thumbprint(private_key.public_key()),
            private_key=private_key,
            created=created,
        )

    @property
    def current(self) -> SigningKey:
        self.reload_if_changed()
        return self._keys[0]

    def jwks(self) -> dict[str, Any]:
        # The current key and the previous one: enough for tokens of at most 10 minutes.
        self.reload_if_changed()
        return {"keys": [key.public_jwk() for key in self._keys[:2]]}


class JwtIssuer:
    def __init__(self, keys: KeyStore, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds

    def issue(
        self,
        user: User,
        session: Session,
        *,
        scope: str | None = None,
        not_after: datetime | None = None,
    ) -> tuple[str, int]:
        now = datetime.now(UTC)
        key = self._keys.current
        expires = now + timedelta(seconds=self._ttl)
        if not_after is not None:
            expires = min(expires, not_after)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user.id),
            "sid": str(session.id),
            "jti": str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "role": user.role.value,
        }
        if scope is not None:
            claims["scope"] = scope
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm="EdDSA",
            headers={"kid": key.kid, "typ": "at+jwt"},
        )
        return token, max(0, int(expires.timestamp()) - int(now.timestamp()))


class OpaqueRefreshTokens:
    """Refresh tokens are 256 random bits; only their SHA-256 is stored."""

    def new(self) -> tuple[str, bytes]:
        token = secrets.token_urlsafe(32)
        return token, self.hash(token)

    def hash(self, token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()


BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
# 62**43 > 2**256: 43 base62 digits hold 32 random bytes.
_BASE62_DIGITS = 43


class OpaquePersonalAccessTokens:
    """`btp_` and 32 random bytes (256 bits) in base62; only their SHA-256 is stored (a
    slow hash buys nothing against 256 bits of randomness: docs/adr/0042)."""

    def new(self) -> tuple[str, bytes]:
        number = int.from_bytes(secrets.token_bytes(32), "big")
        digits = []
        for _ in range(_BASE62_DIGITS):
            number, digit = divmod(number, 62)
            digits.append(BASE62[digit])
        token = TOKEN_PREFIX + "".join(reversed(digits))
        return token, self.hash(token)

    def hash(self, token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()
