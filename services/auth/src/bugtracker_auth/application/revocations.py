"""The events that end sessions: `auth.session_revoked` for a logout, a password change, a
deactivation, a reused refresh token or a revoked personal access token (whose id is the
session of the access tokens the gateway minted for it, docs/adr/0042)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bugtracker_shared.event_schemas import AuthSessionRevoked
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.request_context import current_request_id

from bugtracker_auth.domain.users import RevocationReason, User

SERVICE = "auth"


def revocation_data(
    user_id: uuid.UUID,
    session_ids: Sequence[uuid.UUID],
    now: datetime,
    *,
    horizon: timedelta,
    actor_id: uuid.UUID | None,
) -> dict[str, Any]:
    """The fields of event_schemas.RevocationData."""
    return {
        "user_id": user_id,
        "session_ids": list(session_ids),
        "revoked_at": now,
        # After this instant no access token of these sessions can verify any more, so
        # consumers may forget them.
        "forget_after": now + horizon,
        "revoked_by": actor_id,
    }


def session_revoked(
    user: User,
    session_ids: Sequence[uuid.UUID],
    now: datetime,
    *,
    horizon: timedelta,
    reason: RevocationReason,
    actor_id: uuid.UUID | None,
) -> CloudEvent:
    return new_event(
        "auth.session_revoked",
        service=SERVICE,
        subject=user.id,
        sequence=user.version,
        data=AuthSessionRevoked(
            **revocation_data(user.id, session_ids, now, horizon=horizon, actor_id=actor_id),
            reason=reason.value,
        ),
        actor_id=actor_id,
        correlation_id=current_request_id(),
    )
