"""The endpoints' signing secrets, encrypted at rest with the deployment's key.

A signing secret must be sent in clear to sign (HMAC), so it cannot be hashed like a
password; a copy of the database alone must not give them away. Each is sealed with
AES-256-GCM under `settings.secret_key`: a random 96-bit nonce per encryption (never
reused under one key, whatever the number of secrets), and the webhook's id as
associated data, so a ciphertext copied into another webhook's row does not decrypt
there. The first byte says the format, so the scheme can change (a new key, another
cipher) while rows of the old format are still read.

    blob = VERSION (1 byte) | nonce (12 bytes) | ciphertext and GCM tag (len(secret) + 16)
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"\x01"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class SecretBoxError(ValueError):
    """A blob that does not decrypt: another key, another row, or altered bytes."""


def generate_key() -> str:
    """A new value for the `secret_key` setting: base64 of 32 random bytes."""
    return base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode()


class SecretBox:
    """Encrypts and decrypts signing secrets under one key (the `secret_key` setting)."""

    def __init__(self, secret_key: str) -> None:
        # The message never holds the value: it is a secret, and errors reach the logs.
        try:
            key = base64.b64decode(secret_key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "secret_key (BUGTRACKER_WEBHOOKS_SECRET_KEY) is not valid base64; it must "
                "be the base64 of 32 random bytes"
            ) from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                "secret_key (BUGTRACKER_WEBHOOKS_SECRET_KEY) must be the base64 of exactly "
                f"{KEY_BYTES} random bytes, not {len(key)}"
            )
        self._aead = AESGCM(key)

    def encrypt(self, secret: str, *, context: bytes) -> bytes:
        """The sealed secret; `context` (the webhook's id bytes) must be given again to
        decrypt it."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), VERSION + context)
        return VERSION + nonce + sealed

    def decrypt(self, blob: bytes, *, context: bytes) -> str:
        """The secret sealed by `encrypt` with this context; SecretBoxError otherwise."""
        if blob[:1] != VERSION:
            raise SecretBoxError("the encrypted secret has an unknown format")
        if len(blob) < 1 + NONCE_BYTES + TAG_BYTES:
            raise SecretBoxError("the encrypted secret is truncated")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, VERSION + context)
        except InvalidTag:
            raise SecretBoxError(
                "the encrypted secret does not decrypt with this key for this webhook"
            ) from None
        return plain.decode()
