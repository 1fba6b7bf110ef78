"""The use cases of a ticket's comments and watchers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bugtracker_shared.etags import check_version
from bugtracker_shared.pagination import Listing, decode_time_id_cursor, time_id_key
from bugtracker_shared.permissions import Permission
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.comment_writing import mentions_in, new_comment, store_comment
from bugtracker_tickets.application.markdown import to_html
from bugtracker_tickets.application.ports import UnitOfWork
from bugtracker_tickets.application.use_cases import Idempotency, TicketUseCases
from bugtracker_tickets.domain.errors import (
    CommentNotFoundError,
    ForbiddenError,
)
from bugtracker_tickets.domain.tickets import Comment, Ticket


@dataclass(frozen=True)
class CommentCreated:
    comment: Comment
    replayed: bool = False


@dataclass
class CommentUseCases:
    uow: Callable[[], UnitOfWork]
    tickets: TicketUseCases

    async def list_comments(
        self, principal: Principal, ticket_ref: str, *, limit: int, cursor: str | None
    ) -> Listing[Comment]:
        ticket, _ = await self.tickets.visible_ticket(principal, ticket_ref)
        after = decode_time_id_cursor(cursor) if cursor else None
        async with self.uow() as uow:
            rows = await uow.comments.list(ticket.id, after=after, limit=limit + 1)
        return Listing.from_overfetch(rows, limit, lambda c: time_id_key(c.created_at, c.id))

    async def add_comment(
        self,
        principal: Principal,
        ticket_ref: str,
        body: str,
        idempotency: Idempotency | None = None,
    ) -> CommentCreated:
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require(Permission.TICKET_COMMENT)
        access.require_writable()
        mentions = await mentions_in(self.tickets.projects, principal, access, body)
        comment = new_comment(ticket, principal, body, await to_html(body), mentions)
        async with self.uow() as uow:
            if idempotency is not None:
                earlier = await idempotency.claim(
                    uow, principal.user_id, f"comment:{ticket.id}", comment.id
                )
                if earlier is not None:
                    stored = await uow.comments.get(earlier)
                    if stored is None:
                        raise CommentNotFoundError("No such comment.")
                    return CommentCreated(stored, replayed=True)
            locked = await uow.tickets.get(ticket.id, for_update=True)
            if locked is None:
                raise CommentNotFoundError("No such ticket.")
            await store_comment(uow, locked, principal, comment)
            await uow.commit()
        return CommentCreated(comment)

    async def _comment(self, uow: UnitOfWork, ticket: Ticket, comment_id: uuid.UUID) -> Comment:
        comment = await uow.comments.get(comment_id, for_update=True)
        if comment is None or comment.ticket_id != ticket.id or comment.deleted_at is not None:
            raise CommentNotFoundError("No such comment.")
        return comment

    async def edit_comment(
        self,
        principal: Principal,
        ticket_ref: str,
        comment_id: uuid.UUID,
        body: str,
        *,
        expected_version: int | None,
    ) -> Comment:
        """Only the author edits a comment."""
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require_writable()
        mentions = await mentions_in(self.tickets.projects, principal, access, body)
        body_html = await to_html(body)
        async with self.uow() as uow:
            comment = await self._comment(uow, ticket, comment_id)
            if comment.author_id != principal.user_id:
                raise ForbiddenError("Only the author may edit a comment.")
            check_version(comment.version, expected_version)
            comment.body = body
            comment.body_html = body_html
            comment.mentions = mentions
            comment.updated_at = datetime.now(UTC)
            comment.version += 1
            await uow.comments.update(comment)
            await uow.commit()
        return comment

    async def delete_comment(
        self, principal: Principal, ticket_ref: str, comment_id: uuid.UUID
    ) -> None:
        """The author, or a maintainer, deletes a comment."""
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require_writable()
        async with self.uow() as uow:
            comment = await self._comment(uow, ticket, comment_id)
            if comment.author_id != principal.user_id:
                access.require(Permission.TICKET_DELETE)
            comment.deleted_at = datetime.now(UTC)
            comment.version += 1
            await uow.comments.update(comment)
            await uow.commit()

    # -- watchers -----------------------------------------------------------------------

    async def watchers(self, principal: Principal, ticket_ref: str) -> list[uuid.UUID]:
        ticket, _ = await self.tickets.visible_ticket(principal, ticket_ref)
        async with self.uow() as uow:
            return await uow.watchers.list(ticket.id)

    async def watch(self, principal: Principal, ticket_ref: str, *, watching: bool) -> Ticket:
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require(Permission.TICKET_WATCH)
        async with self.uow() as uow:
            if watching:
                await uow.watchers.add(ticket.id, principal.user_id, datetime.now(UTC))
            else:
                await uow.watchers.remove(ticket.id, principal.user_id)
            await uow.commit()
        return ticket
