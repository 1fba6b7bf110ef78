"""The webhooks service on real PostgreSQL and RabbitMQ, delivering to real receivers:
the API, signatures, retries with the same id, order per ticket, and that recording and
sending are each one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.event_schemas import TicketCreated, TicketUpdated
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_testkit import eventually, fault_at_commit, fault_on, injected_fault
from bugtracker_testkit.receiver import Answer, Received, Receiver, receiving
from standardwebhooks.webhooks import Webhook as Verifier

from services.webhooks.tests.conftest import AppFactory, Directory, Publish, running

pytestmark = pytest.mark.integration


def ticket_event(
    name: str, project_id: uuid.UUID, *, ticket_id: uuid.UUID | None = None, sequence: int = 1
) -> CloudEvent:
    """A `ticket.created` or `ticket.updated` as the tickets service publishes it."""
    ticket_id = ticket_id or uuid.uuid4()
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": ticket_id,
        "key": "BUG-1",
        "project_id": project_id,
        "title": "Crash on save",
        "type": "bug",
        "priority": "high",
        "status": "open",
        "resolution": None,
        "reporter_id": uuid.uuid4(),
        "assignee_id": None,
        "labels": [],
        "due_date": None,
        "version": sequence,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
    }
    data = (
        TicketUpdated(**fields, changes={"title": {"from": "Crash", "to": "Crash on save"}})
        if name == "ticket.updated"
        else TicketCreated(**fields)
    )
    return new_event(
        name,
        service="tickets",
        subject=ticket_id,
        sequence=sequence,
        data=data,
        actor_id=None,
        correlation_id=None,
    )


async def create_hook(
    client: httpx.AsyncClient,
    directory: Directory,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    url: str,
    events: list[str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/projects/{project_id}/webhooks",
        json={"url": url, "events": events or ["ticket.*"]},
        headers=directory.headers(user_id),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def arrivals(receiver: Receiver, count: int) -> list[Received]:
    async def enough() -> list[Received] | None:
        return receiver.received if len(receiver.received) >= count else None

    return await eventually(enough, what=f"{count} deliveries at the receiver")


async def test_the_api_shows_the_secret_once_and_refuses_what_it_must(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    project_id, people = directory.project(lead="maintainer", viewer="viewer")
    lead = directory.headers(people["lead"])
    base = f"/api/v1/projects/{project_id}/webhooks"

    created = await client.post(
        base, json={"url": "https://127.0.0.1/hook", "events": ["ticket.*"]}, headers=lead
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert created.headers["location"] == f"/api/v1/webhooks/{body['id']}"
    assert created.headers["etag"] == '"1"'
    shown = await client.get(f"/api/v1/webhooks/{body['id']}", headers=lead)
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    listed = (await client.get(base, headers=lead)).json()
    assert [w["id"] for w in listed["items"]] == [body["id"]]
    assert "secret" not in listed["items"][0]

    refusals = [
        ({"url": "http://ci.example.com/x", "events": ["ticket.*"]}, 422, "validation_error"),
        ({"url": "https://127.0.0.1/x", "events": ["nope.*"]}, 422, "validation_error"),
        ({"url": "https://127.0.0.1/x", "events": ["ticket.*"], "extra": 1}, 422, None),
        ({"url": "https://127.0.0.1/x", "events": []}, 422, None),
    ]
    for payload, status, code in refusals:
        answer = await client.post(base, json=payload, headers=lead)
        assert answer.status_code == status, payload
        assert answer.headers["content-type"] == "application/problem+json"
        if code:
            assert answer.json()["code"] == code
    viewer = await client.post(
        base,
        json={"url": "https://127.0.0.1/x", "events": ["ticket.*"]},
        headers=directory.headers(people["viewer"]),
    )
    assert viewer.status_code == 403
    stranger = await client.get(
        f"/api/v1/webhooks/{body['id']}", headers=directory.headers(uuid.uuid4())
    )
    assert stranger.status_code == 404
    listed = (await client.get(base, headers=lead)).json()
    assert len(listed["items"]) == 1  # nothing the refusals touched
    for ref in ("%28%07", "%F1%84%9B%9A%04", "no-such-key-at-all"):
        odd = await client.get(f"/api/v1/projects/{ref}/webhooks", headers=lead)
        assert odd.status_code == 404, (ref, odd.text)


async def test_an_event_arrives_signed_with_the_secret_and_the_event_id(
    client: httpx.AsyncClient, directory: Directory, publish: Publish
) -> None:
    project_id, people = directory.project(lead="maintainer")
    async with receiving() as receiver:
        hook = await create_hook(client, directory, project_id, people["lead"], receiver.url)
        other_project, others = directory.project(lead="maintainer")
        await create_hook(client, directory, other_project, others["lead"], receiver.url)
        event = ticket_event("ticket.created", project_id)
        await publish(event)
        (got,) = await arrivals(receiver, 1)

    assert got.webhook_id == str(event.id)
    payload = Verifier(hook["secret"]).verify(got.body, got.headers)
    assert payload["id"] == str(event.id)
    assert payload["data"]["project_id"] == str(project_id)
    assert got.headers["content-type"].startswith("application/cloudevents+json")

    async def logged() -> dict[str, Any] | None:
        log = await client.get(
            f"/api/v1/webhooks/{hook['id']}/deliveries",
            headers=directory.headers(people["lead"]),
        )
        items = log.json()["items"]
        return items[0] if items and items[0]["status"] == "succeeded" else None

    entry = await eventually(logged, what="the delivery to be logged as succeeded")
    assert (entry["event_id"], entry["attempt"], entry["response_status"]) == (
        str(event.id),
        1,
        204,
    )
    assert len(receiver.received) == 1  # the other project's webhook got nothing


async def test_failures_are_retried_with_the_same_webhook_id_until_one_succeeds(
    client: httpx.AsyncClient, directory: Directory, publish: Publish
) -> None:
    project_id, people = directory.project(lead="maintainer")
    answers = iter([Answer(status=500), Answer(status=503), Answer(status=200)])
    async with receiving(lambda _: next(answers)) as receiver:
        hook = await create_hook(client, directory, project_id, people["lead"], receiver.url)
        event = ticket_event("ticket.created", project_id)
        await publish(event)
        got = await arrivals(receiver, 3)
    assert [r.webhook_id for r in got] == [str(event.id)] * 3
    signatures = {r.headers["webhook-signature"] for r in got}
    for received in got:
        Verifier(hook["secret"]).verify(received.body, received.headers)
    assert len({r.body for r in got}) == 1
    assert len(signatures) >= 1


async def test_a_failing_event_holds_back_its_ticket_and_no_other(
    client: httpx.AsyncClient, directory: Directory, publish: Publish
) -> None:
    project_id, people = directory.project(lead="maintainer")
    ticket_a, ticket_b = uuid.uuid4(), uuid.uuid4()
    a1 = ticket_event("ticket.created", project_id, ticket_id=ticket_a, sequence=1)
    a2 = ticket_event("ticket.updated", project_id, ticket_id=ticket_a, sequence=2)
    b1 = ticket_event("ticket.created", project_id, ticket_id=ticket_b, sequence=1)
    failures = {str(a1.id): 2}

    def answer(received: Received) -> Answer:
        left = failures.get(received.webhook_id, 0)
        if left:
            failures[received.webhook_id] = left - 1
            return Answer(status=500)
        return Answer(status=204)

    async with receiving(answer) as receiver:
        await create_hook(client, directory, project_id, people["lead"], receiver.url)
        for event in (a1, a2, b1):
            await publish(event)
        await arrivals(receiver, 5)
        order = receiver.ids()
    assert order.count(str(a1.id)) == 3
    assert order.index(str(a2.id)) > max(i for i, x in enumerate(order) if x == str(a1.id))
    assert order.index(str(b1.id)) < max(i for i, x in enumerate(order) if x == str(a1.id))


async def test_a_recording_that_fails_records_nothing_and_the_event_comes_again(
    make_app: AppFactory, directory: Directory, infra: Stack
) -> None:
    project_id, people = directory.project(lead="maintainer")
    app = make_app()
    db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
    try:
        async with receiving() as receiver, running(app) as client:
            await create_hook(client, directory, project_id, people["lead"], receiver.url)
            event = ticket_event("ticket.created", project_id)
            recorder = app.state.recorder
            for fault in (
                fault_on("INSERT", "webhooks.deliveries"),
                fault_at_commit("INSERT", "webhooks.deliveries"),
            ):
                async with injected_fault(db, fault) as injected:
                    with pytest.raises(Exception, match="injected fault"):
                        await recorder.handle_event(event)
                    assert await injected.fired() == 1
                assert (
                    await db.fetchval(
                        "SELECT count(*) FROM webhooks.inbox WHERE event_id = $1", event.id
                    )
                    == 0
                )
                assert await db.fetchval("SELECT count(*) FROM webhooks.deliveries") == 0
            await recorder.handle_event(event)  # the broker's redelivery
            await recorder.handle_event(event)  # and once more: nothing new
            await arrivals(receiver, 1)
            assert await db.fetchval("SELECT count(*) FROM webhooks.deliveries") == 1
    finally:
        await db.close()


async def test_an_outcome_that_is_not_recorded_is_sent_again_with_the_same_id(
    make_app: AppFactory, directory: Directory, infra: Stack
) -> None:
    """A sender that dies between the request and recording its outcome: the lease runs
    out and the delivery goes out again, with the same `webhook-id` (at least once)."""
    project_id, people = directory.project(lead="maintainer")
    app = make_app()
    db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
    try:
        async with receiving() as receiver, running(app) as client:
            fault = fault_at_commit("UPDATE", "webhooks.deliveries", when="NEW.attempt > 0")
            async with injected_fault(db, fault) as injected:
                await create_hook(client, directory, project_id, people["lead"], receiver.url)
                event = ticket_event("ticket.created", project_id)
                await app.state.recorder.handle_event(event)
                await arrivals(receiver, 1)

                async def fired() -> bool:
                    return await injected.fired() >= 1

                await eventually(fired, what="the outcome's commit to fail")
                row = await db.fetchrow(
                    "SELECT status, attempt, leased_until FROM webhooks.deliveries"
                )
                assert row is not None
                assert (row["status"], row["attempt"]) == ("pending", 0)
                assert row["leased_until"] is not None
            # The lease runs out (as it would after the attempt timeout and its margin).
            await db.execute("UPDATE webhooks.deliveries SET leased_until = now() - interval '1s'")
            app.state.dispatcher.wake()
            got = await arrivals(receiver, 2)
            assert [r.webhook_id for r in got] == [str(event.id)] * 2

            async def recorded() -> bool:
                status = await db.fetchval("SELECT status FROM webhooks.deliveries")
                return bool(status == "succeeded")

            await eventually(recorded, what="the second attempt to be recorded")
    finally:
        await db.close()


async def test_ping_and_redeliver_are_accepted_and_sent(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    project_id, people = directory.project(lead="maintainer")
    lead = directory.headers(people["lead"])
    async with receiving() as receiver:
        hook = await create_hook(client, directory, project_id, people["lead"], receiver.url)
        ping = await client.post(f"/api/v1/webhooks/{hook['id']}/ping", headers=lead)
        assert ping.status_code == 202
        (first,) = await arrivals(receiver, 1)
        assert first.json()["type"] == "io.bugtracker.webhook.ping.v1"
        assert first.webhook_id == ping.json()["event_id"]
        again = await client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{ping.json()['delivery_id']}/redeliver",
            headers=lead,
        )
        assert again.status_code == 202
        second = (await arrivals(receiver, 2))[1]
        assert second.webhook_id == first.webhook_id
        assert second.body == first.body
        missing = await client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}/redeliver", headers=lead
        )
        assert missing.status_code == 404
