from __future__ import annotations

import uuid
from datetime import datetime

from bugtracker_shared.web import ResponseModel
from pydantic import BaseModel

from bugtracker_notifications.domain.notifications import Notification


class NotificationResponse(ResponseModel):
    id: uuid.UUID
    type: str
    event_id: uuid.UUID
    actor_id: uuid.UUID | None
    project_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    ticket_key: str | None
    summary: str
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, notification: Notification) -> NotificationResponse:
        return cls.from_attributes(notification)


class UnreadCountResponse(BaseModel):
    count: int
