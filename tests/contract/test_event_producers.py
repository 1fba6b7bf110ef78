"""Every event the services produce passes the checks its consumers make before handling
it (`bugtracker_shared.messaging.accepted_event`): its `data` matches the schema of
event_schemas.py, its `source` is the service that owns the type, and it travels under its
own routing key. The events are built with each producer's own builders."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from bugtracker_auth.application.revocations import revocation_data, session_revoked
from bugtracker_auth.application.use_cases import public_user
from bugtracker_auth.domain.users import GlobalRole, RevocationReason, User
from bugtracker_projects.application.use_cases import ProjectUseCases, project_data
from bugtracker_projects.domain.projects import Caller, Member, Project
from bugtracker_shared.event_schemas import (
    EVENT_DATA,
    ProjectArchived,
    ProjectCreated,
    ProjectDeleted,
    ProjectUpdated,
    UserDeactivated,
    UserRegistered,
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookUpdated,
)
from bugtracker_shared.event_schemas import Comment as CommentData
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.messaging import accepted_event
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.tokens import Principal
from bugtracker_tickets.application.attachments import attachment_data
from bugtracker_tickets.application.configuration import field_document, project_event
from bugtracker_tickets.application.milestones import milestone_event
from bugtracker_tickets.application.ticket_events import ticket_event
from bugtracker_tickets.domain.attachments import Attachment
from bugtracker_tickets.domain.configuration import (
    DEFAULT_WORKFLOW,
    FieldDef,
    FieldOption,
    FieldType,
    workflow_document,
)
from bugtracker_tickets.domain.planning import Milestone, MilestoneState
from bugtracker_tickets.domain.tickets import Priority, Ticket
from bugtracker_webhooks.domain.webhooks import Webhook

NOW = datetime.now(UTC)
ACTOR = uuid.uuid4()


class Outbox:
    """What a use case adds to its unit of work's outbox."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.outbox = self
        self.projects = self

    async def add(self, event: CloudEvent) -> None:
        self.events.append(event)

    async def update(self, _: object) -> None:
        return None


def wire(event: CloudEvent) -> bytes:
    """The body as the outbox relay publishes it."""
    return json.dumps(event.model_dump(mode="json", exclude_none=True)).encode()


def tickets_events() -> list[CloudEvent]:
    principal = Principal(user_id=ACTOR, session_id=uuid.uuid4(), role="member", token="t")
    ticket = Ticket(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        key="BUG-7",
        number=7,
        title="Crash on save",
        description="It crashes.",
        type="bug",
        priority=Priority.HIGH,
        status="open",
        reporter_id=ACTOR,
        created_at=NOW,
        updated_at=NOW,
        assignee_id=uuid.uuid4(),
        labels=["ui"],
        due_date=date(2030, 1, 1),
    )
    watchers = [ACTOR]
    assignee = {"assignee_id": {"from": None, "to": str(ticket.assignee_id)}}
    comment = CommentData(id=uuid.uuid4(), author_id=ACTOR, body="@Ada look", mentions=[ACTOR])
    deleted = Ticket(**{**ticket.__dict__, "deleted_at": NOW, "resolution": "fixed"})
    other = {"id": uuid.uuid4(), "key": "OPS-3", "project_id": uuid.uuid4()}
    relation = {"id": uuid.uuid4(), "type": "blocked_by", "ticket": other}
    file = an_attachment(ticket)
    return [
        ticket_event("ticket.created", ticket, principal, watchers),
        ticket_event("ticket.assigned", ticket, principal, watchers, changes=assignee),
        ticket_event(
            "ticket.updated",
            ticket,
            principal,
            watchers,
            changes={"labels": {"from": [], "to": ["ui"]}, "due_date": {"from": None, "to": None}},
        ),
        ticket_event(
            "ticket.status_changed",
            ticket,
            principal,
            watchers,
            changes={"status": {"from": "open", "to": "done"}},
        ),
        ticket_event("ticket.commented", ticket, principal, watchers, comment=comment),
        ticket_event(
            "ticket.deleted",
            deleted,
            principal,
            watchers,
            changes={"deleted": {"from": False, "to": True}},
        ),
        ticket_event(
            "ticket.assigned",
            ticket,
            principal,
            watchers,
            changes=assignee,
            bulk={"id": uuid.uuid4(), "size": 12},
        ),
        *(
            ticket_event(name, ticket, principal, watchers, relation=relation)
            for name in ("ticket.related", "ticket.unrelated")
        ),
        ticket_event("ticket.unblocked", ticket, principal, watchers, blocker=other),
        *(
            ticket_event(name, ticket, principal, watchers, attachment=attachment_data(file))
            for name in ("ticket.attachment_added", "ticket.attachment_removed")
        ),
        *milestone_events(principal, ticket.project_id),
        *configuration_events(principal, ticket.project_id),
    ]


def an_attachment(ticket: Ticket) -> Attachment:
    return Attachment(
        id=uuid.uuid4(),
        ticket_id=ticket.id,
        project_id=ticket.project_id,
        filename="shot.png",
        content_type="image/png",
        size=1234,
        sha256="0" * 64,
        uploader_id=ACTOR,
        created_at=NOW,
    )


def configuration_events(principal: Principal, project_id: uuid.UUID) -> list[CloudEvent]:
    """The tickets service's `project.*` events: a project's tracker configuration."""
    definition = FieldDef(
        id=uuid.uuid4(),
        project_id=project_id,
        key="severity",
        name="Severity",
        type=FieldType.SELECT,
        created_at=NOW,
        updated_at=NOW,
        options=(FieldOption("minor", "Minor"),),
    )
    moved = {"in_review": 3}
    types = [{"key": "bug", "name": "Bug"}]
    return [
        project_event(
            "project.workflow_changed",
            project_id,
            2,
            principal,
            version=2,
            workflow=workflow_document(DEFAULT_WORKFLOW),
            moved=moved,
        ),
        project_event(
            "project.ticket_types_changed",
            project_id,
            2,
            principal,
            version=2,
            types=types,
            moved={},
        ),
        project_event(
            "project.fields_changed",
            project_id,
            1,
            principal,
            change="created",
            field=field_document(definition),
        ),
    ]


def milestone_events(principal: Principal, project_id: uuid.UUID) -> list[CloudEvent]:
    milestone = Milestone(
        id=uuid.uuid4(),
        project_id=project_id,
        name="1.0",
        description="",
        due_date=date(2030, 1, 1),
        state=MilestoneState.OPEN,
        created_at=NOW,
        updated_at=NOW,
        total=3,
        done=1,
    )
    return [
        milestone_event("milestone.created", milestone, principal),
        milestone_event(
            "milestone.updated",
            milestone,
            principal,
            changes={"state": {"from": "open", "to": "closed"}},
        ),
        milestone_event("milestone.deleted", milestone, principal),
    ]


async def projects_events() -> list[CloudEvent]:
    caller = Caller(user_id=ACTOR, is_admin=False, token="t")
    project = Project(
        id=uuid.uuid4(),
        key="DEMO",
        name="Demo",
        description="",
        created_by=ACTOR,
        created_at=NOW,
        updated_at=NOW,
    )
    uow: Any = Outbox()
    record = ProjectUseCases._record
    data = project_data(project)
    await record(uow, "project.created", project, caller, ProjectCreated(**data, owner_id=ACTOR))
    changes = {"name": {"from": "Old", "to": "Demo"}}
    await record(uow, "project.updated", project, caller, ProjectUpdated(**data, changes=changes))
    archived = {"archived": {"from": False, "to": True}}
    archived_data = ProjectArchived(**data, changes=archived)
    await record(uow, "project.archived", project, caller, archived_data)
    await record(uow, "project.deleted", project, caller, ProjectDeleted(**data))
    member = Member(
        project_id=project.id,
        user_id=uuid.uuid4(),
        display_name="Ada",
        role=ProjectRole.DEVELOPER,
        added_at=NOW,
    )
    # `_member_event` uses nothing of its object but `_record`, a static method.
    use_cases: Any = SimpleNamespace(_record=record)
    member_event = ProjectUseCases._member_event
    await member_event(use_cases, uow, "project.member_added", project, caller, member)
    role_change = {"role": {"from": "developer", "to": "viewer"}}
    await member_event(
        use_cases, uow, "project.member_role_changed", project, caller, member, changes=role_change
    )
    await member_event(use_cases, uow, "project.member_removed", project, caller, member)
    events: list[CloudEvent] = uow.events
    return events


async def auth_events() -> list[CloudEvent]:
    user = User(
        id=uuid.uuid4(),
        email="ada@example.com",
        display_name="Ada",
        password_hash="not-a-hash",
        role=GlobalRole.MEMBER,
        is_active=False,
        created_at=NOW,
        updated_at=NOW,
    )
    # The producer's own builders (bugtracker_auth.application.revocations).
    horizon = timedelta(minutes=15)
    revocation = revocation_data(user.id, [uuid.uuid4()], NOW, horizon=horizon, actor_id=ACTOR)
    revoked = [
        session_revoked(user, [uuid.uuid4()], NOW, horizon=horizon, reason=reason, actor_id=None)
        for reason in (RevocationReason.LOGOUT, RevocationReason.TOKEN_REVOKED)
    ]

    def auth_event(name: str, data: UserRegistered | UserDeactivated) -> CloudEvent:
        return new_event(
            name,
            service="auth",
            subject=user.id,
            sequence=user.version,
            data=data,
            actor_id=None,
            correlation_id=None,
        )

    return [
        auth_event("user.registered", UserRegistered(**public_user(user))),
        auth_event("user.deactivated", UserDeactivated(**public_user(user), **revocation)),
        *revoked,
    ]


def webhooks_events() -> list[CloudEvent]:
    """The webhook as the webhooks service's events carry it (`Webhook.event_fields`)."""
    webhook = Webhook(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        url="https://hooks.example.com/bugtracker",
        events=["ticket.created", "ticket.status_changed"],
        description="CI",
        active=True,
        secret="whsec_current",
        previous_secret=None,
        previous_secret_expires_at=None,
        failing_since=None,
        disabled_at=None,
        created_by=ACTOR,
        created_at=NOW,
        updated_at=NOW,
        version=1,
    )

    def webhook_event(
        name: str, data: WebhookCreated | WebhookUpdated | WebhookDeleted | WebhookDisabled
    ) -> CloudEvent:
        return new_event(
            name,
            service="webhooks",
            subject=webhook.id,
            sequence=webhook.version,
            data=data,
            actor_id=ACTOR,
            correlation_id=None,
        )

    changes = {"active": {"from": True, "to": False}}
    return [
        webhook_event("webhook.created", WebhookCreated(**webhook.event_fields())),
        webhook_event("webhook.updated", WebhookUpdated(**webhook.event_fields(), changes=changes)),
        webhook_event("webhook.deleted", WebhookDeleted(**webhook.event_fields(deleted=True))),
        webhook_event(
            "webhook.disabled",
            WebhookDisabled(**webhook.event_fields(), maintainer_ids=[ACTOR, uuid.uuid4()]),
        ),
    ]


async def test_every_event_the_services_produce_passes_the_consumers_checks() -> None:
    events = tickets_events() + await projects_events() + await auth_events() + webhooks_events()
    assert sorted({event.name for event in events}) == sorted(EVENT_DATA)
    for event in events:
        accepted = accepted_event(wire(event), event.name)
        assert accepted.id == event.id


def test_ticket_events_declare_what_the_producer_emits() -> None:
    """No field of a ticket event is left out of its schema (extra fields are allowed,
    but what tickets publishes is the contract)."""
    for event in tickets_events():
        model = EVENT_DATA[event.name]
        undeclared = set(event.data) - {
            field.alias or name for name, field in model.model_fields.items()
        }
        assert not undeclared, f"{event.name} carries undeclared {sorted(undeclared)}"


@pytest.mark.parametrize("producer", ["projects", "auth", "webhooks"])
async def test_project_and_auth_events_declare_what_the_producer_emits(producer: str) -> None:
    if producer == "webhooks":
        events = webhooks_events()
    else:
        events = await projects_events() if producer == "projects" else await auth_events()
    for event in events:
        model = EVENT_DATA[event.name]
        declared = {field.alias or name for name, field in model.model_fields.items()}
        undeclared = set(event.data) - declared
        assert not undeclared, f"{event.name} carries undeclared {sorted(undeclared)}"
