"""Signing secrets encrypted at rest: AES-256-GCM bound to the webhook's row."""

from __future__ import annotations

import base64
import uuid

import pytest
from bugtracker_webhooks.infrastructure.secret_box import SecretBox, SecretBoxError, generate_key

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WEBHOOK = uuid.UUID("00000000-0000-0000-0000-0000000000a1").bytes
OTHER_WEBHOOK = uuid.UUID("00000000-0000-0000-0000-0000000000a2").bytes


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(generate_key())


def test_round_trip(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, context=WEBHOOK)

    assert box.decrypt(blob, context=WEBHOOK) == SECRET
    assert SECRET.encode() not in blob
    # version + nonce + ciphertext + tag
    assert len(blob) == 1 + 12 + len(SECRET) + 16
    assert blob[:1] == b"\x01"


def test_two_encryptions_of_one_secret_differ(box: SecretBox) -> None:
    first = box.encrypt(SECRET, context=WEBHOOK)
    second = box.encrypt(SECRET, context=WEBHOOK)

    assert first != second
    assert first[1:13] != second[1:13]  # a fresh nonce each time


def test_a_blob_copied_to_another_webhook_does_not_decrypt(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, context=WEBHOOK)

    with pytest.raises(SecretBoxError, match="does not decrypt"):
        box.decrypt(blob, context=OTHER_WEBHOOK)


def test_another_key_does_not_decrypt(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, context=WEBHOOK)

    with pytest.raises(SecretBoxError):
        SecretBox(generate_key()).decrypt(blob, context=WEBHOOK)


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_any_altered_byte_is_detected(box: SecretBox, position: int) -> None:
    blob = bytearray(box.encrypt(SECRET, context=WEBHOOK))
    blob[position] ^= 0x01

    with pytest.raises(SecretBoxError):
        box.decrypt(bytes(blob), context=WEBHOOK)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" + bytes(27), b"\x02" + bytes(40)])
def test_short_or_unknown_blobs_are_refused(box: SecretBox, blob: bytes) -> None:
    with pytest.raises(SecretBoxError):
        box.decrypt(blob, context=WEBHOOK)


def test_the_same_key_in_another_process_decrypts() -> None:
    key = generate_key()
    blob = SecretBox(key).encrypt(SECRET, context=WEBHOOK)

    assert SecretBox(key).decrypt(blob, context=WEBHOOK) == SECRET


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "exactly 32"),
        ("not base64!", "not valid base64"),
        (base64.b64encode(bytes(16)).decode(), "exactly 32 random bytes, not 16"),
        (base64.b64encode(bytes(33)).decode(), "exactly 32 random bytes, not 33"),
    ],
)
def test_bad_keys_are_refused_clearly(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        SecretBox(key)

    assert "BUGTRACKER_WEBHOOKS_SECRET_KEY" in str(caught.value)


def test_a_generated_key_is_32_bytes() -> None:
    assert len(base64.b64decode(generate_key(), validate=True)) == 32
    assert generate_key() != generate_key()
