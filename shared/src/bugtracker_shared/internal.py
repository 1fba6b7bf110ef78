"""`/internal/...` endpoints: only other Bugtracker processes may call them, presenting
the deployment's shared internal token in `X-Internal-Token`. The gateway never routes
`/internal`, so clients cannot reach them through it; without the right token they answer
404, as if they did not exist."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Header, Request

from bugtracker_shared.problems import ProblemError

HEADER = "X-Internal-Token"


async def internal_caller(
    request: Request,
    x_internal_token: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """A route dependency: the caller presents the token the app keeps in
    `app.state.internal_token` (none configured: nobody may call)."""
    expected: str = getattr(request.app.state, "internal_token", "")
    if not expected or not x_internal_token:
        raise ProblemError(404, "not_found", "Not Found")
    if not hmac.compare_digest(x_internal_token.encode(), expected.encode()):
        raise ProblemError(404, "not_found", "Not Found")
