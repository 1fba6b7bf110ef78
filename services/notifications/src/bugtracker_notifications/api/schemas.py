from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class NotificationResponse(BaseModel):
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


class UnreadCountResponse(BaseModel):
    count: int
