"""The webhook endpoints (docs/adr/0043): a project's webhooks, each by its id, its
delivery log, redeliveries and pings. Maintainers and owners only."""

from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    IfNoneMatch,
    Paging,
    from_app_state,
    unless_not_modified,
    versioned,
)
from fastapi import APIRouter, Depends, Response

from bugtracker_webhooks.api.schemas import (
    AcceptedDelivery,
    CreateWebhookRequest,
    DeliveryPage,
    DeliveryResponse,
    UpdateWebhookRequest,
    WebhookPage,
    WebhookResponse,
    WebhookWithSecretResponse,
)
from bugtracker_webhooks.application.use_cases import WebhookUseCases
from bugtracker_webhooks.domain.webhooks import Delivery

UseCases = Annotated[WebhookUseCases, Depends(from_app_state(WebhookUseCases))]

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def _accepted(delivery: Delivery) -> AcceptedDelivery:
    return AcceptedDelivery(delivery_id=delivery.id, event_id=delivery.event_id)


@router.post("/projects/{project_ref}/webhooks", status_code=201)
async def create_webhook(
    project_ref: str,
    body: CreateWebhookRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    response: Response,
) -> WebhookWithSecretResponse:
    """The answer is the only place the signing secret is ever shown."""
    webhook = await cases.create(principal, project_ref, body.new())
    response.headers["Location"] = f"/api/v1/webhooks/{webhook.id}"
    response.headers["Cache-Control"] = "no-store"
    return versioned(response, WebhookWithSecretResponse.of(webhook))


@router.get("/projects/{project_ref}/webhooks")
async def list_webhooks(
    project_ref: str, principal: CurrentPrincipal, cases: UseCases, paging: Paging
) -> WebhookPage:
    """Newest first."""
    listing = await cases.list_for_project(
        principal, project_ref, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(WebhookPage, listing, WebhookResponse.of)


@router.get("/webhooks/{webhook_id}", response_model=WebhookResponse)
async def get_webhook(
    webhook_id: uuid.UUID,
    principal: CurrentPrincipal,
    cases: UseCases,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> WebhookResponse | Response:
    webhook = await cases.get(principal, webhook_id)
    return unless_not_modified(response, if_none_match, WebhookResponse.of(webhook))


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(
    webhook_id: uuid.UUID,
    body: UpdateWebhookRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    write: Conditional,
) -> WebhookResponse:
    webhook = await cases.update(
        principal, webhook_id, body.changes(), expected_version=write.expected_version
    )
    return write.answer(WebhookResponse.of(webhook))


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: uuid.UUID, principal: CurrentPrincipal, cases: UseCases
) -> None:
    """With its delivery log; pending deliveries are dropped."""
    await cases.delete(principal, webhook_id)


@router.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    webhook_id: uuid.UUID, principal: CurrentPrincipal, cases: UseCases, response: Response
) -> WebhookWithSecretResponse:
    """A new secret, shown only here; the previous one keeps signing for 24 hours, so
    deliveries carry both signatures until then."""
    webhook = await cases.rotate_secret(principal, webhook_id)
    response.headers["Cache-Control"] = "no-store"
    return versioned(response, WebhookWithSecretResponse.of(webhook))


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: uuid.UUID, principal: CurrentPrincipal, cases: UseCases, paging: Paging
) -> DeliveryPage:
    """Newest first."""
    listing = await cases.deliveries(
        principal, webhook_id, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(DeliveryPage, listing, DeliveryResponse.of)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: CurrentPrincipal, cases: UseCases
) -> AcceptedDelivery:
    """The same event again, with the same `webhook-id`, as a new delivery."""
    return _accepted(await cases.redeliver(principal, webhook_id, delivery_id))


@router.post("/webhooks/{webhook_id}/ping", status_code=202)
async def ping(
    webhook_id: uuid.UUID, principal: CurrentPrincipal, cases: UseCases
) -> AcceptedDelivery:
    """A `webhook.ping` event to the endpoint, whatever events it subscribes to."""
    return _accepted(await cases.ping(principal, webhook_id))


# The error answers each operation's route does not reveal (docs/adr/0031): not a
# maintainer (403); the project's limit of webhooks (409).
_WRITE = {403}
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/projects/{project_ref}/webhooks"): {403, 409},
    ("GET", "/api/v1/projects/{project_ref}/webhooks"): _WRITE,
    ("GET", "/api/v1/webhooks/{webhook_id}"): _WRITE,
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): _WRITE,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): _WRITE,
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): _WRITE,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): _WRITE,
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): _WRITE,
    ("POST", "/api/v1/webhooks/{webhook_id}/ping"): _WRITE,
}
VERSIONED = ("WebhookResponse", "WebhookWithSecretResponse")  # answered with an ETag
