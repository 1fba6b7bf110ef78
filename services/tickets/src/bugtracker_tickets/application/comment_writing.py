"""Writing a comment, for the comment use cases and for a transition that comments:
who it mentions, the comment itself, its author as a watcher, and `ticket.commented`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bugtracker_shared.event_schemas import Comment as CommentData
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import ProjectDirectory, UnitOfWork
from bugtracker_tickets.application.ticket_events import record
from bugtracker_tickets.domain.tickets import Comment, ProjectAccess, Ticket, mentioned


async def mentions_in(
    projects: ProjectDirectory, principal: Principal, access: ProjectAccess, body: str
) -> list[uuid.UUID]:
    """Members named with `@` in `body`; nobody outside the project can be mentioned."""
    if "@" not in body:
        return []
    members = await projects.members(access.project_id, principal)
    return mentioned(body, [(m.user_id, m.display_name, m.email) for m in members])


def new_comment(
    ticket: Ticket, principal: Principal, body: str, body_html: str, mentions: list[uuid.UUID]
) -> Comment:
    now = datetime.now(UTC)
    return Comment(
        id=uuid.uuid4(),
        ticket_id=ticket.id,
        author_id=principal.user_id,
        body=body,
        body_html=body_html,
        mentions=mentions,
        created_at=now,
        updated_at=now,
    )


async def store_comment(
    uow: UnitOfWork, ticket: Ticket, principal: Principal, comment: Comment
) -> None:
    """Write the comment, make its author a watcher and record `ticket.commented`."""
    await uow.comments.add(comment)
    await uow.watchers.add(ticket.id, principal.user_id, comment.created_at)
    await record(
        uow,
        "ticket.commented",
        ticket,
        principal,
        comment=CommentData(
            id=comment.id,
            author_id=comment.author_id,
            body=comment.body,
            mentions=list(comment.mentions),
        ),
    )
