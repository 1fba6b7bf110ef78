"""From events to deliveries, and the dispatcher's retries, order and endpoint health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_shared.events import CloudEvent, event_type
from bugtracker_shared.tokens import Principal
from bugtracker_webhooks.application.use_cases import NewWebhook
from bugtracker_webhooks.domain.webhooks import AttemptResult, DeliveryStatus, Webhook

from services.webhooks.tests.unit.fakes import WebhooksWorld

FAIL = AttemptResult(status=500, duration_ms=3, error=None)
OK = AttemptResult(status=204, duration_ms=3, error=None)


def event(name: str, project_id: uuid.UUID, *, subject: uuid.UUID, sequence: int) -> CloudEvent:
    return CloudEvent(
        id=uuid.uuid4(),
        source="/bugtracker/tickets",
        type=event_type(name),
        subject=str(subject),
        time=datetime.now(UTC),
        sequence=sequence,
        data={"id": str(subject), "project_id": str(project_id)},
    )


async def hook(world: WebhooksWorld, project_id: uuid.UUID, events: list[str]) -> Webhook:
    lead = next(p for p, manages in world.projects.members[project_id].items() if manages)
    caller = Principal(user_id=lead, session_id=uuid.uuid4(), role="member", token="")
    return await world.webhooks.create(
        caller, str(project_id), NewWebhook(url="https://hooks.example.com/x", events=events)
    )


async def test_an_event_becomes_one_delivery_per_matching_webhook_of_its_project(
    world: WebhooksWorld,
) -> None:
    project_id, _ = world.project(lead=True)
    other_project, _ = world.project(lead=True)
    tickets = await hook(world, project_id, ["ticket.*"])
    members = await hook(world, project_id, ["project.member_added"])
    elsewhere = await hook(world, other_project, ["*"])
    created = event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)

    await world.recorder.handle_event(created)
    await world.recorder.handle_event(created)  # the broker delivers it again

    (delivery,) = world.database.deliveries_of(tickets.id)
    assert (delivery.event_id, delivery.event_type, delivery.status) == (
        created.id,
        "ticket.created",
        DeliveryStatus.PENDING,
    )
    assert delivery.payload == created.model_dump_json(exclude_none=True).encode()
    assert world.database.deliveries_of(members.id) == []
    assert world.database.deliveries_of(elsewhere.id) == []


async def test_events_of_no_project_and_inactive_webhooks_get_nothing(
    world: WebhooksWorld,
) -> None:
    project_id, _ = world.project(lead=True)
    webhook = await hook(world, project_id, ["*"])
    world.database.state.webhooks[webhook.id].active = False
    registered = CloudEvent(
        id=uuid.uuid4(),
        source="/bugtracker/auth",
        type=event_type("user.registered"),
        subject=str(uuid.uuid4()),
        time=datetime.now(UTC),
        sequence=1,
        data={"id": str(uuid.uuid4())},
    )
    await world.recorder.handle_event(registered)
    await world.recorder.handle_event(
        event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
    )
    assert world.database.state.deliveries == []


async def test_a_delivery_is_signed_with_the_webhooks_secrets_and_succeeds_on_2xx(
    world: WebhooksWorld,
) -> None:
    project_id, _ = world.project(lead=True)
    webhook = await hook(world, project_id, ["ticket.*"])
    created = event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
    await world.recorder.handle_event(created)

    (done,) = await world.send_due()
    assert (done.status, done.attempt, done.response_status) == (DeliveryStatus.SUCCEEDED, 1, 200)
    ((url, message_id, _, secrets),) = world.sender.sent
    assert (url, message_id, secrets) == (webhook.url, str(created.id), [webhook.secret])
    assert await world.send_due() == []


async def test_failures_follow_the_schedule_then_the_delivery_fails(world: WebhooksWorld) -> None:
    project_id, _ = world.project(lead=True)
    await hook(world, project_id, ["ticket.*"])
    await world.recorder.handle_event(
        event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
    )
    world.sender.script = [FAIL] * 4
    waits = []
    for _ in range(3):
        (delivery,) = await world.send_due()
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.next_attempt_at is not None
        waits.append((delivery.next_attempt_at - world.clock.now).total_seconds())
        assert await world.send_due() == []  # not due yet
        world.clock.now = delivery.next_attempt_at
    (last,) = await world.send_due()
    assert waits == [5.0, 300.0, 1800.0]
    assert (last.status, last.attempt, last.next_attempt_at) == (DeliveryStatus.FAILED, 4, None)
    ids = {message_id for _, message_id, _, _ in world.sender.sent}
    assert len(world.sender.sent) == 4
    assert len(ids) == 1  # every attempt carries the same webhook-id


async def test_a_longer_retry_after_is_honoured(world: WebhooksWorld) -> None:
    project_id, _ = world.project(lead=True)
    await hook(world, project_id, ["ticket.*"])
    await world.recorder.handle_event(
        event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
    )
    world.sender.script = [AttemptResult(status=429, duration_ms=1, error=None, retry_after="120")]
    (delivery,) = await world.send_due()
    assert delivery.next_attempt_at == world.clock.now + timedelta(seconds=120)


async def test_a_failing_event_holds_back_later_events_of_its_ticket_only(
    world: WebhooksWorld,
) -> None:
    project_id, _ = world.project(lead=True)
    await hook(world, project_id, ["ticket.*"])
    ticket_a, ticket_b = uuid.uuid4(), uuid.uuid4()
    a1 = event("ticket.created", project_id, subject=ticket_a, sequence=1)
    a2 = event("ticket.updated", project_id, subject=ticket_a, sequence=2)
    b1 = event("ticket.created", project_id, subject=ticket_b, sequence=1)
    for e in (a1, a2, b1):
        await world.recorder.handle_event(e)

    world.sender.script = [FAIL]
    first = await world.send_due()
    assert [d.event_id for d in first] == [a1.id, b1.id]
    assert [d.status for d in first] == [DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED]
    world.clock.advance(seconds=60)
    second = await world.send_due()
    assert [d.event_id for d in second] == [a1.id]  # a2 waited for a1
    third = await world.send_due()
    assert [d.event_id for d in third] == [a2.id]


async def test_an_event_recorded_out_of_order_still_goes_after_its_predecessor(
    world: WebhooksWorld,
) -> None:
    project_id, _ = world.project(lead=True)
    await hook(world, project_id, ["ticket.*"])
    ticket = uuid.uuid4()
    later = event("ticket.updated", project_id, subject=ticket, sequence=3)
    earlier = event("ticket.updated", project_id, subject=ticket, sequence=2)
    await world.recorder.handle_event(later)
    await world.recorder.handle_event(earlier)
    first = await world.send_due()
    assert [d.event_id for d in first] == [earlier.id]
    assert [d.event_id for d in await world.send_due()] == [later.id]


async def test_an_endpoint_failing_for_five_days_is_disabled_and_the_maintainers_told(
    world: WebhooksWorld,
) -> None:
    project_id, people = world.project(lead=True, owner=True, dev=False)
    webhook = await hook(world, project_id, ["ticket.*"])
    world.sender.script = [FAIL] * 100

    async def fail_one() -> None:
        await world.recorder.handle_event(
            event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
        )
        await world.send_due()

    await fail_one()
    started = world.clock.now
    assert world.database.state.webhooks[webhook.id].failing_since == started
    world.clock.advance(days=4, hours=23)
    await fail_one()
    assert world.database.state.webhooks[webhook.id].active

    world.projects.unavailable = True  # projects cannot say who to tell: not yet
    world.clock.advance(hours=2)
    await fail_one()
    assert world.database.state.webhooks[webhook.id].active

    world.projects.unavailable = False
    await fail_one()
    stored = world.database.state.webhooks[webhook.id]
    assert (stored.active, stored.disabled_at) == (False, world.clock.now)
    disabled = world.database.events[-1]
    assert disabled.name == "webhook.disabled"
    assert sorted(disabled.data["maintainer_ids"]) == sorted(
        str(people[name].user_id) for name in ("lead", "owner")
    )
    sent = len(world.sender.sent)
    await world.recorder.handle_event(
        event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
    )
    world.clock.advance(days=1)
    await world.send_due()
    assert len(world.sender.sent) == sent  # nothing goes to a disabled endpoint


async def test_a_success_stops_the_failure_clock(world: WebhooksWorld) -> None:
    project_id, _ = world.project(lead=True)
    webhook = await hook(world, project_id, ["ticket.*"])
    world.sender.script = [FAIL, OK]
    await world.recorder.handle_event(
        event("ticket.created", project_id, subject=uuid.uuid4(), sequence=1)
    )
    await world.send_due()
    assert world.database.state.webhooks[webhook.id].failing_since is not None
    world.clock.advance(days=6)
    await world.send_due()
    assert world.database.state.webhooks[webhook.id].failing_since is None
    assert world.database.state.webhooks[webhook.id].active


@pytest.mark.parametrize("pattern", ["*", "ticket.*", "ticket.commented"])
async def test_patterns_select_the_events(world: WebhooksWorld, pattern: str) -> None:
    project_id, _ = world.project(lead=True)
    webhook = await hook(world, project_id, [pattern])
    commented = event("ticket.commented", project_id, subject=uuid.uuid4(), sequence=2)
    member = event("project.member_added", project_id, subject=project_id, sequence=2)
    member.data.pop("project_id")
    member.data["id"] = str(project_id)
    await world.recorder.handle_event(commented)
    await world.recorder.handle_event(member)
    got = sorted(d.event_type for d in world.database.deliveries_of(webhook.id))
    expected = {
        "*": ["project.member_added", "ticket.commented"],
        "ticket.*": ["ticket.commented"],
        "ticket.commented": ["ticket.commented"],
    }
    assert got == expected[pattern]
