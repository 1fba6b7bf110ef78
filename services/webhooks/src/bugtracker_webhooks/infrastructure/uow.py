from __future__ import annotations

from collections.abc import Callable

from bugtracker_shared.uow import OutboxUnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bugtracker_webhooks.application.ports import DeliveryRepository, Inbox, WebhookRepository
from bugtracker_webhooks.infrastructure.repositories import (
    SqlDeliveryRepository,
    SqlInbox,
    SqlWebhookRepository,
)
from bugtracker_webhooks.infrastructure.secret_box import SecretBox
from bugtracker_webhooks.infrastructure.tables import outbox


class WebhooksUnitOfWork(OutboxUnitOfWork):
    outbox_table = outbox
    webhooks: WebhookRepository
    deliveries: DeliveryRepository
    inbox: Inbox

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] | None,
        box: SecretBox,
    ) -> None:
        super().__init__(session_factory, after_commit)
        self._box = box

    def _bind_repositories(self) -> None:
        self.webhooks = SqlWebhookRepository(self.session, self._box)
        self.deliveries = SqlDeliveryRepository(self.session, self._box)
        self.inbox = SqlInbox(self.session)
