"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the spec's
reference library so that any receiver using a Standard Webhooks verifier accepts them.

A delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature`; the last
holds one `v1,<base64 HMAC-SHA256>` per secret, space-separated. While a secret is being
rotated the previous one signs too, so a receiver still configured with it keeps
verifying until it switches.
"""

from __future__ import annotations

import base64
import secrets as random_bytes
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: `whsec_` + base64."""
    return SECRET_PREFIX + base64.b64encode(random_bytes.token_bytes(SECRET_BYTES)).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<sig>` for each secret, in order (the current
    one first), space-separated.

    `timestamp` is the `webhook-timestamp` sent (Unix seconds) and `body` the exact bytes
    sent; it must be UTF-8 (the JSON of a CloudEvent), which the library signs as text."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    data = body.decode("utf-8")
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return " ".join(
        Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=data) for secret in secrets
    )
