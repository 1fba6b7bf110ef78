"""Wires the real adapters into the use cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime, http_jwks_fetcher
from bugtracker_shared.tokens import JwksFetcher, TokenVerifier

from bugtracker_tickets.application.activity import ActivityUseCases
from bugtracker_tickets.application.attachments import AttachmentUseCases
from bugtracker_tickets.application.bulk import BulkUseCases
from bugtracker_tickets.application.comments_and_watchers import CommentUseCases
from bugtracker_tickets.application.configuration import ConfigurationUseCases
from bugtracker_tickets.application.milestones import MilestoneUseCases
from bugtracker_tickets.application.ports import BlobStore, ProjectDirectory
from bugtracker_tickets.application.relations import RelationUseCases
from bugtracker_tickets.application.use_cases import TicketUseCases
from bugtracker_tickets.domain.activity import ACTIVITY_EVENTS
from bugtracker_tickets.infrastructure.activity_repository import SqlActivityLog
from bugtracker_tickets.infrastructure.blob_store import LocalBlobStore
from bugtracker_tickets.infrastructure.content_types import sniff
from bugtracker_tickets.infrastructure.html_backfill import backfill_html
from bugtracker_tickets.infrastructure.membership_view import (
    PROJECT_EVENTS,
    QUEUE,
    MembershipView,
    ViewedProjectDirectory,
)
from bugtracker_tickets.infrastructure.projects_client import HttpProjectDirectory
from bugtracker_tickets.infrastructure.tables import SCHEMA, outbox
from bugtracker_tickets.infrastructure.ticket_reads import DriverTicketReads
from bugtracker_tickets.infrastructure.uow import TicketsUnitOfWork
from bugtracker_tickets.settings import AttachmentSettings, Settings

ACTIVITY_QUEUE = "tickets.activity"
ACTIVITY_PREFETCH = 5


@dataclass(frozen=True)
class UseCases:
    """Every use-case object of the service, as the routes find them on `app.state`."""

    tickets: TicketUseCases
    comments: CommentUseCases
    relations: RelationUseCases
    milestones: MilestoneUseCases
    configuration: ConfigurationUseCases
    bulk: BulkUseCases
    attachments: AttachmentUseCases
    activity: ActivityUseCases


def blob_store(settings: AttachmentSettings) -> BlobStore:
    """The S3-compatible store when it is configured, else the local directory."""
    if settings.uses_s3:
        from bugtracker_tickets.infrastructure.s3_blob_store import S3BlobStore

        return S3BlobStore(settings)
    return LocalBlobStore(settings.dir)


def build(
    settings: Settings,
    *,
    projects_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> tuple[ServiceRuntime, UseCases]:
    projects = service_client(
        settings.projects_url,
        timeout_seconds=settings.http_timeout_seconds,
        transport=projects_transport,
    )
    runtime = ServiceRuntime.create(
        name="tickets",
        settings=settings,
        schema=SCHEMA,
        outbox=outbox,
        verifier=TokenVerifier(
            jwks_fetcher or http_jwks_fetcher(projects, settings.jwks_url),
            issuer=settings.issuer,
            audience=settings.audience,
        ),
    )
    runtime.http_clients.append(projects)

    def uow() -> TicketsUnitOfWork:
        return TicketsUnitOfWork(runtime.session_factory, runtime.after_commit)

    directory: ProjectDirectory = HttpProjectDirectory(projects)
    view: MembershipView | None = None
    if settings.internal_token:
        view = MembershipView(
            runtime.engine,
            runtime.broker,
            projects,
            settings.internal_token,
            lag_seconds=settings.membership_lag_seconds,
        )
        # Registered before the broker starts: the queue is declared and consumed on
        # connect, and only then is the snapshot loaded.
        runtime.broker.add_consumer(QUEUE, PROJECT_EVENTS, view.handle_event)
        runtime.jobs.append(view.seed_until_done)
        directory = ViewedProjectDirectory(view, directory)
    runtime.jobs.append(lambda: backfill_html(runtime.engine))
    use_cases = TicketUseCases(
        uow=uow, projects=directory, reads=DriverTicketReads(runtime.engine, view)
    )
    if view is not None:
        view.on_member_removed = use_cases.member_left
    milestone_cases = MilestoneUseCases(uow=uow, projects=directory)
    # Clears the tickets of deleted milestones after the DELETE's first batch.
    runtime.jobs.append(milestone_cases.keep_clearing)
    configuration_cases = ConfigurationUseCases(uow=uow, tickets=use_cases)
    # Purges the values of deleted custom fields (docs/adr/0040).
    runtime.jobs.append(configuration_cases.keep_purging)
    attachment_settings = settings.attachments
    attachment_cases = AttachmentUseCases(
        uow=uow,
        tickets=use_cases,
        store=blob_store(attachment_settings),
        sniff=sniff,
        max_bytes=attachment_settings.max_bytes,
        quota_bytes=attachment_settings.quota_bytes or None,
        sweep_grace=timedelta(seconds=attachment_settings.sweep_grace_seconds),
    )
    # Purges tickets past the restore window; then the sweep removes their files' bytes.
    runtime.jobs.append(use_cases.keep_purging)
    # Removes bytes no attachment names, after the grace period (docs/adr/0041).
    runtime.jobs.append(attachment_cases.keep_sweeping)
    # The project activity feed, built from the service's own ticket events and projects'
    # member events on its own queue (docs/adr/0046).
    activity_cases = ActivityUseCases(log=SqlActivityLog(runtime.engine), tickets=use_cases)
    # Each entry is one short statement: a few at a time leave the pool to the requests.
    runtime.broker.add_consumer(
        ACTIVITY_QUEUE, ACTIVITY_EVENTS, activity_cases.handle_event, prefetch=ACTIVITY_PREFETCH
    )
    runtime.jobs.append(activity_cases.keep_purging)
    return runtime, UseCases(
        tickets=use_cases,
        comments=CommentUseCases(uow=uow, tickets=use_cases),
        relations=RelationUseCases(uow=uow, tickets=use_cases),
        milestones=milestone_cases,
        configuration=configuration_cases,
        attachments=attachment_cases,
        bulk=BulkUseCases(uow=uow, tickets=use_cases),
        activity=activity_cases,
    )
