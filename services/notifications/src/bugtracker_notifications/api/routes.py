from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import CurrentPrincipal, Paging, from_app_state
from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse, ServerSentEvent

from bugtracker_notifications.api.schemas import NotificationResponse, UnreadCountResponse
from bugtracker_notifications.application.use_cases import NotificationUseCases

UseCases = Annotated[NotificationUseCases, Depends(from_app_state(NotificationUseCases))]

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.get("/notifications")
async def list_notifications(
    principal: CurrentPrincipal,
    cases: UseCases,
    paging: Paging,
    unread: bool = False,
) -> Page[NotificationResponse]:
    """The caller's notifications, newest first; `unread=true` keeps the unread ones."""
    page = await cases.list_notifications(
        principal.user_id, unread_only=unread, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(Page[NotificationResponse], page, NotificationResponse.of)


# Comment lines keep idle connections (and proxies in between) from timing out.
STREAM_PING_SECONDS = 15


@router.get("/notifications/stream", response_class=EventSourceResponse)
async def stream(principal: CurrentPrincipal, cases: UseCases) -> EventSourceResponse:
    """Server-Sent Events: each new notification of the caller, as one `data:` line of the
    same JSON as in the list."""
    # Subscribed before the response starts: nothing committed after this call is missed.
    subscription = cases.subscribe(principal.user_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for notification in subscription:
                yield ServerSentEvent(
                    data=NotificationResponse.of(notification).model_dump_json(),
                    id=str(notification.id),
                )
        finally:
            subscription.close()

    return EventSourceResponse(events(), ping=STREAM_PING_SECONDS)


@router.get("/notifications/unread-count")
async def unread_count(principal: CurrentPrincipal, cases: UseCases) -> UnreadCountResponse:
    return UnreadCountResponse(count=await cases.unread_count(principal.user_id))


@router.post("/notifications/read-all", status_code=204)
async def read_all(principal: CurrentPrincipal, cases: UseCases) -> None:
    await cases.mark_all_read(principal.user_id)


@router.post("/notifications/{notification_id}/read")
async def read_one(
    notification_id: uuid.UUID, principal: CurrentPrincipal, cases: UseCases
) -> NotificationResponse:
    return NotificationResponse.of(await cases.mark_read(principal.user_id, notification_id))
