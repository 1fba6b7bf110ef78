"""Saved filters (docs/adr/0045): a named ticket query, private to its owner or shared
with the members of its project."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from bugtracker_tickets.domain.errors import InvalidFilterProjectError


@dataclass
class SavedFilter:
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    query: str
    # The project it searches; None: every project its runner can see.
    project_id: uuid.UUID | None
    shared: bool
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def __post_init__(self) -> None:
        if self.shared and self.project_id is None:
            raise InvalidFilterProjectError("a shared filter needs a project to share it in")

    def visible_to(self, user_id: uuid.UUID, projects: Collection[uuid.UUID]) -> bool:
        """Its owner always sees it; others while it is shared in a project they can
        see, so a member who leaves the project stops seeing it."""
        if self.owner_id == user_id:
            return True
        return self.shared and self.project_id in projects
