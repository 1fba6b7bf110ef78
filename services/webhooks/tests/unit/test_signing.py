"""Standard Webhooks signatures: byte-exact with the spec, verifiable by its library."""

from __future__ import annotations

import base64
import time

import pytest
from bugtracker_webhooks.infrastructure.signing import new_secret, signature_header
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The spec's published example (standard-webhooks/spec.md; svix's test suite).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = (
    '{"specversion":"1.0","type":"ticket.created","data":{"title":"Crash \u2013 \u00fc"}}'.encode()
)


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_the_spec_test_vector() -> None:
    assert (
        signature_header([SPEC_SECRET], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE
    )


def test_a_new_secret_is_32_random_bytes_in_the_whsec_form() -> None:
    secret = new_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


def test_the_library_verifies_with_each_secret_during_a_rotation() -> None:
    current, previous = new_secret(), new_secret()
    now = int(time.time())

    signature = signature_header([current, previous], "msg_1", now, BODY)

    entries = signature.split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    assert entries[0] == signature_header([current], "msg_1", now, BODY)
    for secret in (current, previous):
        assert Webhook(secret).verify(BODY, headers("msg_1", now, signature)) is not None


def test_another_secret_another_body_or_another_id_does_not_verify() -> None:
    secret = new_secret()
    now = int(time.time())
    signature = signature_header([secret], "msg_1", now, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers("msg_1", now, signature))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers("msg_1", now, signature))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers("msg_2", now, signature))


def test_the_timestamp_is_signed() -> None:
    secret = new_secret()
    now = int(time.time())
    signature = signature_header([secret], "msg_1", now, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers("msg_1", now - 1, signature))


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "msg_1", 0, BODY)
