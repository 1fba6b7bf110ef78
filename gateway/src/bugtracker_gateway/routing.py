"""Which backend serves a path: an ordered table of path prefixes, first match wins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Backend = Literal["auth", "projects", "tickets", "notifications", "webhooks"]
BACKENDS: tuple[Backend, ...] = ("auth", "projects", "tickets", "notifications", "webhooks")

WILDCARD = "*"  # stands for exactly one non-empty path segment


@dataclass(frozen=True, slots=True)
class PrefixRoute:
    """Paths equal to `prefix` or below it (on segment boundaries) go to `backend`."""

    prefix: str
    backend: Backend
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_segments", tuple(self.prefix.strip("/").split("/")))

    def matches(self, segments: list[str]) -> bool:
        if len(segments) < len(self._segments):
            return False
        return all(
            actual == expected or (expected == WILDCARD and actual != "")
            for expected, actual in zip(self._segments, segments, strict=False)
        )


ROUTES: tuple[PrefixRoute, ...] = (
    PrefixRoute("/api/v1/projects/*/tickets", "tickets"),
    PrefixRoute("/api/v1/projects/*/milestones", "tickets"),
    # The project's tracker configuration: the tickets service enforces it (ADR 0040).
    PrefixRoute("/api/v1/projects/*/workflow", "tickets"),
    PrefixRoute("/api/v1/projects/*/ticket-types", "tickets"),
    PrefixRoute("/api/v1/projects/*/fields", "tickets"),
    PrefixRoute("/api/v1/projects/*/webhooks", "webhooks"),
    PrefixRoute("/api/v1/projects/*/activity", "tickets"),
    PrefixRoute("/api/v1/auth", "auth"),
    # A user's e-mail notification settings: the notifications service keeps them.
    PrefixRoute("/api/v1/users/me/notification-preferences", "notifications"),
    PrefixRoute("/api/v1/users", "auth"),
    PrefixRoute("/.well-known/jwks.json", "auth"),
    PrefixRoute("/api/v1/projects", "projects"),
    PrefixRoute("/api/v1/tickets", "tickets"),
    PrefixRoute("/api/v1/milestones", "tickets"),
    PrefixRoute("/api/v1/attachments", "tickets"),
    # Saved ticket queries (ADR 0045).
    PrefixRoute("/api/v1/filters", "tickets"),
    PrefixRoute("/api/v1/notifications", "notifications"),
    PrefixRoute("/api/v1/webhooks", "webhooks"),
)


def backend_for(path: str) -> Backend | None:
    """The backend for a request path, or None when no backend serves it."""
    if not path.startswith("/"):
        return None
    segments = path[1:].split("/")
    if any(segment in (".", "..") for segment in segments):
        return None  # never let dot segments reinterpret the path behind our checks
    return next((route.backend for route in ROUTES if route.matches(segments)), None)


def _is_path(path: str, pattern: tuple[str, ...]) -> bool:
    """`path` has exactly the segments of `pattern` (WILDCARD: any one non-empty)."""
    segments = path[1:].split("/") if path.startswith("/") else []
    return len(segments) == len(pattern) and all(
        actual == expected or (expected == WILDCARD and actual != "")
        for expected, actual in zip(pattern, segments, strict=True)
    )


# The attachment endpoints whose bodies the gateway streams (docs/adr/0041): the upload's
# request body, the content's response body.
_UPLOAD = ("api", "v1", "tickets", WILDCARD, "attachments")
_CONTENT = ("api", "v1", "attachments", WILDCARD, "content")


def is_attachment_upload(method: str, path: str) -> bool:
    """`POST /api/v1/tickets/{ticket_ref}/attachments`, and no other path below or beside it."""
    return method == "POST" and _is_path(path, _UPLOAD)


def is_attachment_content(path: str) -> bool:
    """`/api/v1/attachments/{attachment_id}/content`."""
    return _is_path(path, _CONTENT)
