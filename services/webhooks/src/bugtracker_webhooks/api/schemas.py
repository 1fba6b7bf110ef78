"""Request and response bodies of the webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import Field, model_validator

from bugtracker_webhooks.application.use_cases import NewWebhook, WebhookChanges
from bugtracker_webhooks.domain.webhooks import Delivery, DeliveryStatus, Webhook

Url = Annotated[str, Field(min_length=1, max_length=2048)]
Patterns = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]], Field(min_length=1, max_length=50)
]
Description = Annotated[str, Field(max_length=1000)]


class CreateWebhookRequest(StrictModel):
    model_config = example(
        url="https://ci.example.com/bugtracker",
        events=["ticket.*", "project.member_added"],
        description="CI",
    )

    url: Url
    events: Patterns
    description: Description = ""
    active: bool = True

    def new(self) -> NewWebhook:
        return NewWebhook(
            url=self.url, events=self.events, description=self.description, active=self.active
        )


class UpdateWebhookRequest(StrictModel):
    """Only the fields present change; `active: true` turns a disabled webhook back on."""

    url: Url | None = None
    events: Patterns | None = None
    description: Description | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def no_nulls(self) -> UpdateWebhookRequest:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> WebhookChanges:
        return WebhookChanges(
            url=self.url, events=self.events, description=self.description, active=self.active
        )


class WebhookResponse(ResponseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    url: str
    events: list[str]
    description: str
    active: bool
    disabled_at: datetime | None = Field(
        description="When it was turned off after days of failures (null while on)"
    )
    failing_since: datetime | None = Field(
        description="Since when every attempt has failed (null after a success)"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when the previous secret still signs"
    )
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookResponse:
        return cls.from_attributes(webhook)


class WebhookWithSecretResponse(WebhookResponse):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes; shown only in this answer"
    )

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookWithSecretResponse:
        return cls.from_attributes(webhook)


class WebhookPage(Page[WebhookResponse]):
    pass


class DeliveryResponse(ResponseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="Also the `webhook-id` header of every attempt")
    event_type: str
    attempt: int = Field(description="Attempts made so far")
    status: DeliveryStatus
    response_status: int | None
    duration_ms: int | None
    error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    redelivery_of: uuid.UUID | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryResponse:
        return cls.from_attributes(delivery)


class DeliveryPage(Page[DeliveryResponse]):
    pass


class AcceptedDelivery(ResponseModel):
    """The delivery that was queued (202): follow it in the deliveries log."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
