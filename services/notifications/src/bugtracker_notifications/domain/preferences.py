"""Who wants which notifications where: a user's preferences (docs/api.md, "E-mail
notifications and preferences"). A user without a row has the defaults: in-app and
immediate e-mail for every type."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# Every notification type (docs/api.md, "Notifications"): the keys of `events`.
NOTIFICATION_TYPES: tuple[str, ...] = (
    "ticket.assigned",
    "ticket.status_changed",
    "ticket.mentioned",
    "ticket.commented",
    "ticket.unblocked",
    "project.member_added",
    "webhook.disabled",
)
MIN_DIGEST_MINUTES = 15
MAX_DIGEST_MINUTES = 1440
DEFAULT_DIGEST_MINUTES = 60


class EmailMode(StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Channels:
    in_app: bool = True
    email: bool = True


@dataclass
class Preferences:
    user_id: uuid.UUID
    email: EmailMode = EmailMode.IMMEDIATE
    digest_interval_minutes: int = DEFAULT_DIGEST_MINUTES
    events: dict[str, Channels] = field(default_factory=dict)
    updated_at: datetime | None = None
    version: int = 0
    # When the user's last digest went out (the digest job's bookkeeping).
    last_digest_at: datetime | None = None

    def channels(self, notification_type: str) -> Channels:
        return self.events.get(notification_type, Channels())

    def wants_in_app(self, notification_type: str) -> bool:
        return self.channels(notification_type).in_app

    def email_mode_for(self, notification_type: str) -> EmailMode:
        """How a notification of this type goes out by e-mail (OFF: it does not)."""
        if not self.channels(notification_type).email:
            return EmailMode.OFF
        return self.email

    def complete_events(self) -> dict[str, Channels]:
        """Every type with its channels (the defaults for those not set)."""
        return {name: self.channels(name) for name in NOTIFICATION_TYPES}
