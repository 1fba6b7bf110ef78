"""Managing webhooks: who may, what is refused (and changes nothing), what events say."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from bugtracker_shared.etags import PreconditionFailedError
from bugtracker_webhooks.application.use_cases import (
    MAX_WEBHOOKS_PER_PROJECT,
    NewWebhook,
    WebhookChanges,
)
from bugtracker_webhooks.domain.errors import (
    DeliveryNotFoundError,
    InvalidWebhookError,
    NotAllowedError,
    ProjectNotFoundError,
    WebhookLimitError,
    WebhookNotFoundError,
)

from services.webhooks.tests.unit.fakes import WebhooksWorld

HOOK = NewWebhook(url="https://ci.example.com/hook", events=["ticket.*"], description="CI")


async def test_a_maintainer_creates_a_webhook_whose_event_carries_no_secret(
    world: WebhooksWorld,
) -> None:
    project_id, people = world.project(lead=True)
    webhook = await world.webhooks.create(people["lead"], str(project_id), HOOK)

    assert webhook.secret.startswith("whsec_")
    assert (webhook.project_id, webhook.events, webhook.version) == (project_id, ["ticket.*"], 1)
    (event,) = world.database.events
    assert event.name == "webhook.created"
    assert event.data["id"] == str(webhook.id)
    assert "secret" not in event.data
    assert webhook.secret not in event.model_dump_json()


@pytest.mark.parametrize(
    ("who", "error"), [("viewer", NotAllowedError), ("stranger", ProjectNotFoundError)]
)
async def test_only_maintainers_manage_webhooks_and_a_refusal_changes_nothing(
    world: WebhooksWorld, who: str, error: type[Exception]
) -> None:
    project_id, people = world.project(lead=True, viewer=False)
    existing = await world.webhooks.create(people["lead"], str(project_id), HOOK)
    caller = people.get(who) or world.project(stranger=True)[1]["stranger"]
    before = world.database.snapshot()

    with pytest.raises(error):
        await world.webhooks.create(caller, str(project_id), HOOK)
    for attempt in (
        world.webhooks.get(caller, existing.id),
        world.webhooks.rotate_secret(caller, existing.id),
        world.webhooks.delete(caller, existing.id),
        world.webhooks.ping(caller, existing.id),
    ):
        with pytest.raises(NotAllowedError if who == "viewer" else WebhookNotFoundError):
            await attempt
    assert world.database.state == before


@pytest.mark.parametrize(
    ("new", "field"),
    [
        (NewWebhook(url="http://ci.example.com/hook", events=["ticket.*"]), "url"),
        (NewWebhook(url="https://ci.example.com/hook", events=["tickets.*"]), "events"),
        (NewWebhook(url="https://ci.example.com/hook", events=["user.registered"]), "events"),
    ],
)
async def test_a_refused_url_or_pattern_is_a_validation_error(
    world: WebhooksWorld, new: NewWebhook, field: str
) -> None:
    project_id, people = world.project(lead=True)
    with pytest.raises(InvalidWebhookError) as refused:
        await world.webhooks.create(people["lead"], str(project_id), new)
    assert refused.value.field == field
    assert world.database.state.webhooks == {}


async def test_a_project_has_a_limited_number_of_webhooks(world: WebhooksWorld) -> None:
    project_id, people = world.project(lead=True)
    for _ in range(MAX_WEBHOOKS_PER_PROJECT):
        await world.webhooks.create(people["lead"], str(project_id), HOOK)
    with pytest.raises(WebhookLimitError):
        await world.webhooks.create(people["lead"], str(project_id), HOOK)


async def test_update_records_its_changes_and_honours_the_expected_version(
    world: WebhooksWorld,
) -> None:
    project_id, people = world.project(lead=True)
    webhook = await world.webhooks.create(people["lead"], str(project_id), HOOK)

    with pytest.raises(PreconditionFailedError):
        await world.webhooks.update(
            people["lead"], webhook.id, WebhookChanges(active=False), expected_version=7
        )
    updated = await world.webhooks.update(
        people["lead"],
        webhook.id,
        WebhookChanges(events=["ticket.created", "ticket.created"], active=False),
        expected_version=1,
    )
    assert (updated.events, updated.active, updated.version) == (["ticket.created"], False, 2)
    event = world.database.events[-1]
    assert event.name == "webhook.updated"
    assert event.data["changes"] == {
        "events": {"from": ["ticket.*"], "to": ["ticket.created"]},
        "active": {"from": True, "to": False},
    }


async def test_turning_a_disabled_webhook_on_restarts_its_failure_clock(
    world: WebhooksWorld,
) -> None:
    project_id, people = world.project(lead=True)
    webhook = await world.webhooks.create(people["lead"], str(project_id), HOOK)
    stored = world.database.state.webhooks[webhook.id]
    stored.active, stored.disabled_at, stored.failing_since = (
        False,
        world.clock.now,
        world.clock.now,
    )

    on = await world.webhooks.update(
        people["lead"], webhook.id, WebhookChanges(active=True), expected_version=None
    )
    assert (on.active, on.disabled_at, on.failing_since) == (True, None, None)


async def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(world: WebhooksWorld) -> None:
    project_id, people = world.project(lead=True)
    webhook = await world.webhooks.create(people["lead"], str(project_id), HOOK)
    rotated = await world.webhooks.rotate_secret(people["lead"], webhook.id)

    assert rotated.secret != webhook.secret
    assert rotated.signing_secrets(world.clock.now) == [rotated.secret, webhook.secret]
    later = world.clock.now + timedelta(hours=24, seconds=1)
    assert rotated.signing_secrets(later) == [rotated.secret]
    assert world.database.events[-1].name == "webhook.updated"
    assert webhook.secret not in world.database.events[-1].model_dump_json()


async def test_delete_removes_the_webhook_and_its_deliveries(world: WebhooksWorld) -> None:
    project_id, people = world.project(lead=True)
    webhook = await world.webhooks.create(people["lead"], str(project_id), HOOK)
    await world.webhooks.ping(people["lead"], webhook.id)

    await world.webhooks.delete(people["lead"], webhook.id)
    assert world.database.state.webhooks == {}
    assert world.database.state.deliveries == []
    assert world.database.events[-1].name == "webhook.deleted"
    assert world.database.events[-1].data["deleted"] is True


async def test_redeliver_sends_the_same_event_again_as_a_delivery_of_its_own(
    world: WebhooksWorld,
) -> None:
    project_id, people = world.project(lead=True)
    webhook = await world.webhooks.create(people["lead"], str(project_id), HOOK)
    ping = await world.webhooks.ping(people["lead"], webhook.id)
    await world.send_due()

    again = await world.webhooks.redeliver(people["lead"], webhook.id, ping.id)
    assert (again.event_id, again.payload, again.redelivery_of) == (
        ping.event_id,
        ping.payload,
        ping.id,
    )
    with pytest.raises(DeliveryNotFoundError):
        await world.webhooks.redeliver(people["lead"], webhook.id, uuid.uuid4())
    (sent,) = await world.send_due()
    assert sent.id == again.id
    assert [message_id for _, message_id, _, _ in world.sender.sent] == [str(ping.event_id)] * 2


async def test_lists_are_newest_first_and_paginated(world: WebhooksWorld) -> None:
    project_id, people = world.project(lead=True)
    made = []
    for _ in range(3):
        made.append(await world.webhooks.create(people["lead"], str(project_id), HOOK))
        world.clock.advance(seconds=1)
    first = await world.webhooks.list_for_project(
        people["lead"], str(project_id), limit=2, cursor=None
    )
    assert [w.id for w in first.items] == [made[2].id, made[1].id]
    assert first.next_cursor is not None
    rest = await world.webhooks.list_for_project(
        people["lead"], str(project_id), limit=2, cursor=first.next_cursor
    )
    assert [w.id for w in rest.items] == [made[0].id]
    assert rest.next_cursor is None


@pytest.mark.parametrize("ref", ["(\x07", "a/b", "", "X", "TOOLONGPROJECTKEY", "\U000446da"])
async def test_a_ref_that_names_no_project_is_not_found_without_asking_projects(
    world: WebhooksWorld, ref: str
) -> None:
    _, people = world.project(lead=True)
    world.projects.unavailable = True  # would raise if it were asked for maintainers
    asked: list[str] = []
    real_access = world.projects.access

    async def access(project_ref: str, caller: object) -> object:
        asked.append(project_ref)
        return await real_access(project_ref, caller)  # type: ignore[arg-type]

    world.projects.access = access  # type: ignore[method-assign]
    with pytest.raises(ProjectNotFoundError):
        await world.webhooks.create(people["lead"], ref, HOOK)
    assert asked == []


async def test_a_project_key_is_matched_whatever_its_case(world: WebhooksWorld) -> None:
    project_id, people = world.project(lead=True)
    world.projects.keys["DEMO"] = project_id
    webhook = await world.webhooks.create(people["lead"], "demo", HOOK)
    assert webhook.project_id == project_id
