"""Webhooks and their deliveries: the state they move through, and who may change them."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# A rotated-out secret keeps signing (and verifying, on the receiver's side) this long.
ROTATION_OVERLAP = timedelta(hours=24)
PING_EVENT = "webhook.ping"
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


def project_ref(ref: str) -> str | None:
    """A project is named by its id or its key; anything else names none (None), and is
    never sent on to the projects service."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return ref.upper() if PROJECT_KEY.match(ref.upper()) else None


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class Webhook:
    id: uuid.UUID
    project_id: uuid.UUID
    url: str
    events: list[str]
    description: str
    active: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None
    disabled_at: datetime | None
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery is signed with: the current one, and the previous one
        while its overlap lasts."""
        secrets = [self.secret]
        if (
            self.previous_secret is not None
            and self.previous_secret_expires_at is not None
            and now < self.previous_secret_expires_at
        ):
            secrets.append(self.previous_secret)
        return secrets

    def rotate(self, new_secret: str, now: datetime) -> None:
        self.previous_secret = self.secret
        self.previous_secret_expires_at = now + ROTATION_OVERLAP
        self.secret = new_secret
        self.touch(now)

    def touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def event_fields(self, *, deleted: bool = False) -> dict[str, Any]:
        """The webhook as its events carry it (never a secret)."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "url": self.url,
            "events": list(self.events),
            "description": self.description,
            "active": self.active,
            "disabled_at": self.disabled_at,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": deleted,
        }


@dataclass
class Delivery:
    """One event for one webhook: attempted until a 2xx, or until the retry schedule
    runs out. Every attempt sends the same `payload` with the same `webhook-id` (the
    event's id)."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    ordering_key: str
    sequence: int
    payload: bytes
    status: DeliveryStatus
    attempt: int
    next_attempt_at: datetime | None
    response_status: int | None
    duration_ms: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    redelivery_of: uuid.UUID | None = None


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP attempt came to."""

    status: int | None
    duration_ms: int
    error: str | None
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300  # noqa: PLR2004
