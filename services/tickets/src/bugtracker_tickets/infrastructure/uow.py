from __future__ import annotations

from bugtracker_shared.uow import OutboxUnitOfWork

from bugtracker_tickets.application.ports import (
    AttachmentRepository,
    CommentRepository,
    ConfigurationRepository,
    HistoryRepository,
    IdempotencyStore,
    MilestoneRepository,
    RelationRepository,
    SavedFilterRepository,
    TicketRepository,
    WatcherRepository,
)
from bugtracker_tickets.infrastructure.attachment_repository import SqlAttachmentRepository
from bugtracker_tickets.infrastructure.configuration_repository import (
    SqlConfigurationRepository,
)
from bugtracker_tickets.infrastructure.milestone_repository import SqlMilestoneRepository
from bugtracker_tickets.infrastructure.relation_repository import SqlRelationRepository
from bugtracker_tickets.infrastructure.repositories import (
    SqlCommentRepository,
    SqlHistoryRepository,
    SqlIdempotencyStore,
    SqlTicketRepository,
    SqlWatcherRepository,
)
from bugtracker_tickets.infrastructure.saved_filter_repository import SqlSavedFilterRepository
from bugtracker_tickets.infrastructure.tables import outbox


class TicketsUnitOfWork(OutboxUnitOfWork):
    outbox_table = outbox
    attachments: AttachmentRepository
    configuration: ConfigurationRepository
    tickets: TicketRepository
    milestones: MilestoneRepository
    filters: SavedFilterRepository
    relations: RelationRepository
    comments: CommentRepository
    history: HistoryRepository
    watchers: WatcherRepository
    idempotency: IdempotencyStore

    def _bind_repositories(self) -> None:
        self.attachments = SqlAttachmentRepository(self.session)
        self.configuration = SqlConfigurationRepository(self.session)
        self.tickets = SqlTicketRepository(self.session)
        self.milestones = SqlMilestoneRepository(self.session)
        self.filters = SqlSavedFilterRepository(self.session)
        self.relations = SqlRelationRepository(self.session)
        self.comments = SqlCommentRepository(self.session)
        self.history = SqlHistoryRepository(self.session)
        self.watchers = SqlWatcherRepository(self.session)
        self.idempotency = SqlIdempotencyStore(self.session)
