"""The receivers' side: which URLs deliveries may go to, and sending one signed request
(Standard Webhooks headers) through the SSRF-safe client of `egress`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter

from bugtracker_webhooks.domain.errors import InvalidWebhookError
from bugtracker_webhooks.domain.webhooks import AttemptResult
from bugtracker_webhooks.infrastructure.egress import (
    AddressRefusedError,
    EgressPolicy,
    HostLimiter,
    Resolver,
    UrlRefusedError,
    post,
    resolve_checked,
)
from bugtracker_webhooks.infrastructure.signing import signature_header

ATTEMPTS = Counter(
    "bugtracker_webhook_attempts_total",
    "Delivery attempts to webhook endpoints, by result (success, http_error, network_error).",
    ["result"],
)

USER_AGENT = "Bugtracker-Webhooks/1"
CONTENT_TYPE = "application/cloudevents+json"


class CheckedUrls:
    """A webhook's URL is checked when it is set (https unless allowed, and what its host
    resolves to now) and again on every connection (egress)."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver

    async def check(self, url: str) -> None:
        try:
            self._policy.check_url(url)
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            await resolve_checked(parts.hostname or "", port, self._policy, self._resolver)
        except (UrlRefusedError, AddressRefusedError) as exc:
            raise InvalidWebhookError("url", str(exc)) from exc
        except OSError as exc:
            raise InvalidWebhookError("url", f"The host cannot be resolved ({exc}).") from exc
        except ValueError as exc:
            raise InvalidWebhookError("url", f"Not a valid URL ({exc}).") from exc


class HttpSender:
    def __init__(
        self, client: httpx.AsyncClient, limiter: HostLimiter, *, timeout_seconds: float
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._timeout_seconds = timeout_seconds

    async def send(
        self, url: str, *, message_id: str, payload: bytes, secrets: Sequence[str]
    ) -> AttemptResult:
        async with self._limiter.limit(urlsplit(url).hostname or ""):
            timestamp = int(time.time())
            headers = {
                "content-type": CONTENT_TYPE,
                "user-agent": USER_AGENT,
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(secrets, message_id, timestamp, payload),
            }
            outcome = await post(
                self._client, url, payload, headers, timeout_seconds=self._timeout_seconds
            )
        if outcome.succeeded:
            ATTEMPTS.labels("success").inc()
        else:
            ATTEMPTS.labels("http_error" if outcome.status is not None else "network_error").inc()
        return AttemptResult(
            status=outcome.status,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            retry_after=outcome.retry_after,
        )
