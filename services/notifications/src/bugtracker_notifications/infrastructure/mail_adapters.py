"""The mail ports on their real adapters: messages rendered by the composer and sent over
SMTP, unsubscribe links signed with the deployment's key, and auth's user directory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import quote

import httpx
from bugtracker_shared.internal import HEADER
from bugtracker_shared.problems import UpstreamUnavailableError

from bugtracker_notifications.application.ports import UserInfo
from bugtracker_notifications.domain.errors import (
    InvalidUnsubscribeLinkError,
    MailDeferredError,
    MailRefusedError,
)
from bugtracker_notifications.domain.mail import MailContent
from bugtracker_notifications.infrastructure.mail_composer import MailComposer
from bugtracker_notifications.infrastructure.smtp import (
    PermanentMailError,
    SmtpMailer,
    TransientMailError,
)
from bugtracker_notifications.infrastructure.unsubscribe import (
    InvalidUnsubscribeTokenError,
    UnsubscribeTokens,
)

UNSUBSCRIBE_PATH = "/api/v1/notifications/unsubscribe"
LOOKUP_PATH = "/internal/users/lookup"


class SmtpNotificationMailer:
    def __init__(self, composer: MailComposer, smtp: SmtpMailer) -> None:
        self._composer = composer
        self._smtp = smtp

    async def send(self, content: MailContent) -> None:
        try:
            message = self._composer.compose(content)
        except ValueError as exc:  # not a single address: no retry makes it one
            raise MailRefusedError(str(exc)) from exc
        try:
            await self._smtp.send(message)
        except TransientMailError as exc:
            raise MailDeferredError(str(exc)) from exc
        except PermanentMailError as exc:
            raise MailRefusedError(str(exc)) from exc


class SignedUnsubscribeLinks:
    def __init__(self, tokens: UnsubscribeTokens, public_url: str) -> None:
        self._tokens = tokens
        self._base = public_url.rstrip("/") + UNSUBSCRIBE_PATH

    def url_for(self, user_id: uuid.UUID, notification_type: str) -> str:
        return f"{self._base}?token={quote(self._tokens.make(user_id, notification_type))}"

    def read(self, token: str) -> tuple[uuid.UUID, str]:
        try:
            return self._tokens.read(token)
        except InvalidUnsubscribeTokenError as exc:
            raise InvalidUnsubscribeLinkError(
                "The unsubscribe link is not valid (changed, expired or incomplete)."
            ) from exc


class HttpUserDirectory:
    """Auth's internal lookup: e-mail, name and whether the user is active."""

    def __init__(self, client: httpx.AsyncClient, internal_token: str) -> None:
        self._client = client
        self._headers = {HEADER: internal_token}

    async def lookup(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserInfo]:
        if not user_ids:
            return {}
        try:
            response = await self._client.post(
                LOOKUP_PATH, json={"ids": [str(u) for u in user_ids]}, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError("The auth service cannot be reached.") from exc
        if response.status_code != httpx.codes.OK:
            raise UpstreamUnavailableError(f"The auth service answered {response.status_code}.")
        return {
            uuid.UUID(user["id"]): UserInfo(
                email=user["email"],
                display_name=user["display_name"],
                is_active=bool(user["is_active"]),
            )
            for user in response.json()["users"]
        }
