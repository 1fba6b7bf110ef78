"""What the webhooks use cases refuse; the API maps each to its status."""

from __future__ import annotations


class WebhookNotFoundError(Exception):
    """No such webhook, or one of a project the caller may not see (404)."""


class ProjectNotFoundError(Exception):
    """No such project, or one the caller is not a member of (404)."""


class DeliveryNotFoundError(Exception):
    """No such delivery of this webhook (404)."""


class NotAllowedError(Exception):
    """The caller is a member, but not a maintainer (403)."""


class InvalidWebhookError(ValueError):
    """A URL or an event pattern the service refuses (422); the message says why."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.extra = {"errors": [{"loc": ["body", field], "msg": message}]}


class WebhookLimitError(Exception):
    """The project has as many webhooks as one may have (409)."""

    code = "conflict"

    def __init__(self, limit: int) -> None:
        super().__init__(f"A project may have at most {limit} webhooks.")
