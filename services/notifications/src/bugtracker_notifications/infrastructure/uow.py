from __future__ import annotations

from bugtracker_shared.db import SqlAlchemyUnitOfWork

from bugtracker_notifications.application.ports import (
    FormerMembers,
    Inbox,
    MailRepository,
    NotificationRepository,
    PreferencesRepository,
)
from bugtracker_notifications.infrastructure.mail_repositories import (
    SqlMailRepository,
    SqlPreferencesRepository,
)
from bugtracker_notifications.infrastructure.repositories import (
    SqlFormerMembers,
    SqlInbox,
    SqlNotificationRepository,
)
from bugtracker_notifications.infrastructure.tables import inbox, subject_sequences


class NotificationsUnitOfWork(SqlAlchemyUnitOfWork):
    notifications: NotificationRepository
    inbox: Inbox
    former_members: FormerMembers
    preferences: PreferencesRepository
    mails: MailRepository

    def _bind_repositories(self) -> None:
        self.notifications = SqlNotificationRepository(self.session)
        self.inbox = SqlInbox(self.session, inbox, subject_sequences)
        self.former_members = SqlFormerMembers(self.session)
        self.preferences = SqlPreferencesRepository(self.session)
        self.mails = SqlMailRepository(self.session)
