"""Notification preferences (`GET, PUT /api/v1/users/me/notification-preferences`) and
the one-click unsubscribe of RFC 8058, which mail clients call without a login."""

from __future__ import annotations

from typing import Annotated

from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    IfNoneMatch,
    ResponseModel,
    StrictModel,
    example,
    from_app_state,
    unless_not_modified,
)
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from bugtracker_notifications.application.mail import PreferencesUseCases
from bugtracker_notifications.domain.preferences import (
    MAX_DIGEST_MINUTES,
    MIN_DIGEST_MINUTES,
    Channels,
    EmailMode,
    Preferences,
)

Cases = Annotated[
    PreferencesUseCases, Depends(from_app_state(PreferencesUseCases, "preference_cases"))
]

router = APIRouter(prefix="/api/v1", tags=["notifications"])

PATH = "/users/me/notification-preferences"


class ChannelsModel(StrictModel):
    in_app: bool = True
    email: bool = True


class PreferencesRequest(StrictModel):
    model_config = example(
        email="digest",
        digest_interval_minutes=60,
        events={"ticket.commented": {"in_app": True, "email": False}},
    )

    email: EmailMode = Field(description="immediate, digest or off: how e-mail goes out")
    digest_interval_minutes: int = Field(60, ge=MIN_DIGEST_MINUTES, le=MAX_DIGEST_MINUTES)
    events: dict[str, ChannelsModel] = Field(
        default_factory=dict,
        description="Per notification type; types left out keep the defaults (both on)",
    )


class ChannelsResponse(BaseModel):
    in_app: bool
    email: bool


class PreferencesResponse(ResponseModel):
    email: EmailMode
    digest_interval_minutes: int
    events: dict[str, ChannelsResponse] = Field(description="Every notification type")
    version: int

    @classmethod
    def of(cls, preferences: Preferences) -> PreferencesResponse:
        return cls(
            email=preferences.email,
            digest_interval_minutes=preferences.digest_interval_minutes,
            events={
                name: ChannelsResponse(in_app=c.in_app, email=c.email)
                for name, c in preferences.complete_events().items()
            },
            version=preferences.version,
        )


class UnsubscribedResponse(BaseModel):
    email: EmailMode
    events: dict[str, ChannelsResponse]


@router.get(PATH, response_model=PreferencesResponse)
async def get_preferences(
    principal: CurrentPrincipal,
    cases: Cases,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> PreferencesResponse | Response:
    """The caller's preferences; every type is listed (the defaults: both channels on,
    immediate e-mail)."""
    preferences = await cases.get(principal.user_id)
    return unless_not_modified(response, if_none_match, PreferencesResponse.of(preferences))


@router.put(PATH)
async def put_preferences(
    body: PreferencesRequest, principal: CurrentPrincipal, cases: Cases, write: Conditional
) -> PreferencesResponse:
    """Replace the caller's preferences (`If-Match` honoured)."""
    preferences = await cases.replace(
        principal.user_id,
        email=body.email,
        digest_interval_minutes=body.digest_interval_minutes,
        events={name: Channels(in_app=c.in_app, email=c.email) for name, c in body.events.items()},
        expected_version=write.expected_version,
    )
    return write.answer(PreferencesResponse.of(preferences))


@router.post("/notifications/unsubscribe")
async def unsubscribe(
    cases: Cases, token: Annotated[str, Query(min_length=1, max_length=2000)]
) -> UnsubscribedResponse:
    """RFC 8058 one-click unsubscribe, the URL of a mail's `List-Unsubscribe`: no login,
    any body (mail clients post `List-Unsubscribe=One-Click`). Turns e-mail off for the
    mail's notification type (a digest's link: e-mail off altogether)."""
    preferences = await cases.unsubscribe(token)
    return UnsubscribedResponse(
        email=preferences.email,
        events={
            name: ChannelsResponse(in_app=c.in_app, email=c.email)
            for name, c in preferences.complete_events().items()
        },
    )


ANSWERS: dict[tuple[str, str], set[int]] = {}
VERSIONED = ("PreferencesResponse",)
