from __future__ import annotations

from bugtracker_shared.db import SqlAlchemyUnitOfWork

from bugtracker_notifications.application.ports import Inbox, NotificationRepository
from bugtracker_notifications.infrastructure.repositories import (
    SqlInbox,
    SqlNotificationRepository,
)
from bugtracker_notifications.infrastructure.tables import inbox, subject_sequences


class NotificationsUnitOfWork(SqlAlchemyUnitOfWork):
    notifications: NotificationRepository
    inbox: Inbox

    def _bind_repositories(self) -> None:
        self.notifications = SqlNotificationRepository(self.session)
        self.inbox = SqlInbox(self.session, inbox, subject_sequences)
