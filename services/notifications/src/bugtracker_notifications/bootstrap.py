"""Wires the real adapters into the use cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime, http_jwks_fetcher
from bugtracker_shared.tokens import TokenVerifier

from bugtracker_notifications.application.mail import (
    DigestJob,
    MailSender,
    MailSettings,
    PreferencesUseCases,
)
from bugtracker_notifications.application.ports import UnsubscribeLinks
from bugtracker_notifications.application.use_cases import NotificationUseCases
from bugtracker_notifications.domain.errors import InvalidUnsubscribeLinkError
from bugtracker_notifications.infrastructure.feed import ListeningFeed, listener_connection
from bugtracker_notifications.infrastructure.mail_adapters import (
    HttpUserDirectory,
    SignedUnsubscribeLinks,
    SmtpNotificationMailer,
)
from bugtracker_notifications.infrastructure.mail_composer import MailComposer, mail_domain
from bugtracker_notifications.infrastructure.smtp import SmtpMailer, SmtpSettings
from bugtracker_notifications.infrastructure.tables import SCHEMA
from bugtracker_notifications.infrastructure.unsubscribe import UnsubscribeTokens
from bugtracker_notifications.infrastructure.uow import NotificationsUnitOfWork
from bugtracker_notifications.settings import Settings

SERVICE = "notifications"


@dataclass
class Wired:
    runtime: ServiceRuntime
    notifications: NotificationUseCases
    preferences: PreferencesUseCases


class NoUnsubscribeLinks:
    """Without an unsubscribe key no link was ever made: every token is refused."""

    def url_for(self, user_id: uuid.UUID, notification_type: str) -> str:
        raise RuntimeError(f"e-mail is off: no link for {user_id} ({notification_type})")

    def read(self, token: str) -> tuple[uuid.UUID, str]:
        del token  # whatever it is, no key signed it
        raise InvalidUnsubscribeLinkError("The unsubscribe link is not valid.")


def build(settings: Settings, *, http_transport: httpx.AsyncBaseTransport | None = None) -> Wired:
    """`http_transport` replaces the aiohttp transport of the clients of auth (tests pass
    an `httpx.MockTransport` that serves their own keys and users)."""
    auth_client = service_client(settings.jwks_url, transport=http_transport)
    runtime = ServiceRuntime.create(
        name=SERVICE,
        settings=settings,
        schema=SCHEMA,
        outbox=None,  # this service publishes nothing
        verifier=TokenVerifier(
            http_jwks_fetcher(auth_client, settings.jwks_url),
            issuer=settings.issuer,
            audience=settings.audience,
        ),
    )
    runtime.http_clients.append(auth_client)
    feed = ListeningFeed(listener_connection(settings.database_url))
    # The live feed's listener: started with the runtime, not ready while not listening.
    runtime.jobs.append(feed.run)
    runtime.readiness["notification_feed"] = feed.check

    def uow() -> NotificationsUnitOfWork:
        return NotificationsUnitOfWork(runtime.session_factory, runtime.after_commit)

    links: UnsubscribeLinks = (
        SignedUnsubscribeLinks(UnsubscribeTokens(settings.unsubscribe_key), settings.public_url)
        if settings.unsubscribe_key
        else NoUnsubscribeLinks()
    )
    notifications = NotificationUseCases(uow=uow, feed=feed)
    if settings.smtp_host:
        if not settings.unsubscribe_key:
            raise ValueError(
                "BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY must be set when e-mail is on "
                "(BUGTRACKER_SMTP_HOST): it signs the unsubscribe links"
            )
        users_client = service_client(
            settings.auth_url,
            timeout_seconds=settings.http_timeout_seconds,
            transport=http_transport,
        )
        runtime.http_clients.append(users_client)
        mail_settings = MailSettings(
            public_url=settings.public_url,
            domain=mail_domain(settings.mail_from, settings.public_url),
            poll_seconds=settings.mail_poll_seconds,
            first_retry_seconds=settings.mail_retry_seconds,
            digest_poll_seconds=settings.digest_poll_seconds,
        )
        sender = MailSender(
            uow=uow,
            users=HttpUserDirectory(users_client, settings.internal_token),
            mailer=SmtpNotificationMailer(
                MailComposer(sender=settings.mail_from, public_url=settings.public_url),
                SmtpMailer(
                    SmtpSettings(
                        host=settings.smtp_host,
                        port=settings.smtp_port,
                        username=settings.smtp_username,
                        password=settings.smtp_password,
                        starttls=settings.smtp_starttls,
                    )
                ),
            ),
            links=links,
            settings=mail_settings,
        )
        digests = DigestJob(uow=uow, settings=mail_settings, wake_sender=sender.wake)
        runtime.jobs += [sender.run, digests.run]
        notifications.mail_enabled = True
        notifications.wake_mail = sender.wake
    return Wired(
        runtime=runtime,
        notifications=notifications,
        preferences=PreferencesUseCases(uow=uow, links=links),
    )
