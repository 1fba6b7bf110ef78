from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from bugtracker_shared.tokens import JwksFetcher
from fastapi import FastAPI

from bugtracker_tickets.api import (
    activity_routes,
    attachment_routes,
    bulk_routes,
    configuration_routes,
    filter_routes,
    milestone_routes,
    relation_routes,
)
from bugtracker_tickets.api.routes import ANSWERS, VERSIONED, router
from bugtracker_tickets.application.saved_filters import SavedFilterUseCases
from bugtracker_tickets.bootstrap import build
from bugtracker_tickets.domain.errors import (
    AssigneeNotMemberError,
    AttachmentNotFoundError,
    AttachmentTooLargeError,
    BulkRejectedError,
    CommentNotFoundError,
    ExportTooLargeError,
    FieldExistsError,
    FieldNotFoundError,
    FilterNotFoundError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidMilestoneError,
    InvalidParentError,
    InvalidQueryError,
    InvalidRelationError,
    InvalidTransitionError,
    MilestoneExistsError,
    MilestoneNotFoundError,
    OptionInUseError,
    PreconditionRequiredError,
    ProjectArchivedError,
    ProjectNotFoundError,
    QuotaExceededError,
    RelationCycleError,
    RelationExistsError,
    RelationNotFoundError,
    RequestRuleError,
    ResolutionRequiredError,
    RestoreExpiredError,
    StatusInUseError,
    TicketNotFoundError,
    TypeInUseError,
    UnfinishedDependenciesError,
)
from bugtracker_tickets.settings import Settings

DOMAIN_ERRORS: dict[type[Exception], int] = {
    TicketNotFoundError: 404,
    ProjectNotFoundError: 404,
    ForbiddenError: 403,
    ProjectArchivedError: 409,
    AssigneeNotMemberError: 422,
    CommentNotFoundError: 404,
    InvalidTransitionError: 409,
    ResolutionRequiredError: 422,
    IdempotencyKeyReusedError: 422,
    InvalidMilestoneError: 422,
    InvalidParentError: 422,
    UnfinishedDependenciesError: 409,
    BulkRejectedError: 422,
    RelationNotFoundError: 404,
    RelationExistsError: 409,
    RelationCycleError: 409,
    InvalidRelationError: 422,
    MilestoneNotFoundError: 404,
    MilestoneExistsError: 409,
    RequestRuleError: 422,
    StatusInUseError: 409,
    TypeInUseError: 409,
    OptionInUseError: 409,
    FieldNotFoundError: 404,
    FieldExistsError: 409,
    PreconditionRequiredError: 428,
    AttachmentNotFoundError: 404,
    RestoreExpiredError: 409,
    AttachmentTooLargeError: 413,
    QuotaExceededError: 413,
    InvalidQueryError: 422,
    ExportTooLargeError: 422,
    FilterNotFoundError: 404,
}


def create_app(
    settings: Settings | None = None,
    *,
    projects_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        runtime, cases = build(
            settings, projects_transport=projects_transport, jwks_fetcher=jwks_fetcher
        )
        app.state.use_cases = cases.tickets
        app.state.comment_cases = cases.comments
        app.state.relation_cases = cases.relations
        app.state.milestone_cases = cases.milestones
        app.state.bulk_cases = cases.bulk
        app.state.configuration_cases = cases.configuration
        app.state.attachment_cases = cases.attachments
        app.state.activity_cases = cases.activity
        app.state.filter_cases = SavedFilterUseCases(cases.tickets)
        return runtime

    return service_app(
        name="tickets",
        wire=wire,
        routers=[
            router,
            relation_routes.router,
            milestone_routes.router,
            bulk_routes.router,
            configuration_routes.router,
            attachment_routes.router,
            activity_routes.router,
            filter_routes.router,
        ],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
        answers=ANSWERS
        | relation_routes.ANSWERS
        | milestone_routes.ANSWERS
        | bulk_routes.ANSWERS
        | configuration_routes.ANSWERS
        | attachment_routes.ANSWERS
        | filter_routes.ANSWERS,
        versioned=(
            *VERSIONED,
            *milestone_routes.VERSIONED,
            *configuration_routes.VERSIONED,
            *filter_routes.VERSIONED,
        ),
    )
