"""Webhooks (docs/adr/0043) through the gateway, delivering to real receivers on
127.0.0.1: every row of the contract — signatures verified with the secret, retries with
the same id, order per ticket, redeliver, ping, rotation, SSRF refusals, who may manage
them, one project's events only, and an endpoint disabled after days of failures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_testkit import eventually, register_and_login
from bugtracker_testkit.receiver import Answer, Received, Receiver, receiving
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

pytestmark = pytest.mark.e2e


@dataclass
class Team:
    key: str
    project_id: str
    lead: dict[str, str]
    lead_id: str
    dev: dict[str, str]
    stranger: dict[str, str]


@pytest.fixture(scope="module")
def team(system: Any) -> Team:
    with httpx.Client(base_url=system.gateway_url, timeout=15) as api:
        lead_id, lead = register_and_login(api, "wendy")
        dev_id, dev = register_and_login(api, "devhooks")
        _, stranger = register_and_login(api, "stranger")
        key = "W" + uuid.uuid4().hex[:6].upper()
        project = api.post("/api/v1/projects", json={"key": key, "name": "Hooks"}, headers=lead)
        assert project.status_code == 201, project.text
        added = api.post(
            f"/api/v1/projects/{key}/members",
            json={"user_id": dev_id, "role": "developer"},
            headers=lead,
        )
        assert added.status_code == 201, added.text
        return Team(key, project.json()["id"], lead, lead_id, dev, stranger)


@pytest.fixture
async def api(system: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=15) as client:
        yield client


async def hook(
    api: httpx.AsyncClient, team: Team, receiver: Receiver, events: list[str] | None = None
) -> dict[str, Any]:
    created = await api.post(
        f"/api/v1/projects/{team.key}/webhooks",
        json={"url": f"{receiver.url}/hook", "events": events or ["ticket.*"]},
        headers=team.lead,
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def new_ticket(api: httpx.AsyncClient, team: Team, title: str = "Crash on save") -> str:
    created = await api.post(
        f"/api/v1/projects/{team.key}/tickets", json={"title": title}, headers=team.lead
    )
    assert created.status_code == 201, created.text
    ticket_id: str = created.json()["id"]
    return ticket_id


async def arrivals(receiver: Receiver, count: int, *, within: float = 20) -> list[Received]:
    async def enough() -> list[Received] | None:
        return list(receiver.received) if len(receiver.received) >= count else None

    return await eventually(enough, within=within, what=f"{count} deliveries at the receiver")


async def delivery_log(api: httpx.AsyncClient, team: Team, webhook_id: str) -> list[dict[str, Any]]:
    log = await api.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=team.lead)
    assert log.status_code == 200, log.text
    items: list[dict[str, Any]] = log.json()["items"]
    return items


async def test_a_ticket_event_arrives_signed_with_the_secret(
    api: httpx.AsyncClient, team: Team
) -> None:
    async with receiving() as receiver:
        webhook = await hook(api, team, receiver)
        assert webhook["secret"].startswith("whsec_")
        ticket_id = await new_ticket(api, team)
        (got,) = await arrivals(receiver, 1)

    event = Verifier(webhook["secret"]).verify(got.body, got.headers)
    assert event["type"] == "io.bugtracker.ticket.created.v1"
    assert event["data"]["id"] == ticket_id
    assert got.webhook_id == event["id"]
    assert got.path == "/hook"
    with pytest.raises(WebhookVerificationError):
        Verifier("whsec_" + "A" * 43).verify(got.body, got.headers)

    async def logged() -> dict[str, Any] | None:
        items = await delivery_log(api, team, webhook["id"])
        return items[0] if items and items[0]["status"] == "succeeded" else None

    entry = await eventually(logged, what="the delivery logged as succeeded")
    assert (entry["event_id"], entry["event_type"], entry["attempt"]) == (
        event["id"],
        "ticket.created",
        1,
    )
    shown = await api.get(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)
    assert "secret" not in shown.json()
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)


async def test_failed_attempts_are_retried_with_the_same_webhook_id(
    api: httpx.AsyncClient, team: Team
) -> None:
    answers = iter([Answer(status=500), Answer(status=502), Answer(status=200)])
    async with receiving(lambda _: next(answers)) as receiver:
        webhook = await hook(api, team, receiver)
        await new_ticket(api, team)
        got = await arrivals(receiver, 3)
    assert len({r.webhook_id for r in got}) == 1
    for attempt in got:
        Verifier(webhook["secret"]).verify(attempt.body, attempt.headers)

    async def succeeded() -> dict[str, Any] | None:
        items = await delivery_log(api, team, webhook["id"])
        return items[0] if items and items[0]["status"] == "succeeded" else None

    entry = await eventually(succeeded, what="the third attempt logged")
    assert (entry["attempt"], entry["response_status"]) == (3, 200)
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)


async def test_events_of_one_ticket_arrive_in_order_and_a_failure_holds_back_only_them(
    api: httpx.AsyncClient, team: Team
) -> None:
    """Ticket a's creation fails until ticket b's creation has arrived (at most four
    times): b is not held back by a, and a's two updates wait for its creation."""
    tickets: dict[str, str] = {}
    failed: list[str] = []

    def answer(received: Received) -> Answer:
        subject = received.json()["subject"]
        b_arrived = any(r.json()["subject"] == tickets.get("b") for r in receiver.received)
        creation_of_a = subject == tickets.get("a") and received.json()["sequence"] == 1
        # At most four failures: the run's schedule has four retries.
        if creation_of_a and not b_arrived and len(failed) < 4:
            failed.append(received.webhook_id)
            return Answer(status=503)
        return Answer(status=204)

    async with receiving(answer) as receiver:
        webhook = await hook(api, team, receiver)
        tickets["a"] = await new_ticket(api, team, "A")
        await arrivals(receiver, 1)
        for title in ("A, renamed", "A, renamed again"):
            patched = await api.patch(
                f"/api/v1/tickets/{tickets['a']}", json={"title": title}, headers=team.lead
            )
            assert patched.status_code == 200, patched.text
        tickets["b"] = await new_ticket(api, team, "B")
        got = await arrivals(receiver, len(failed) + 4)

    events = [(r.json()["subject"], r.json()["sequence"]) for r in got]
    of_a = [sequence for subject, sequence in events if subject == tickets["a"]]
    assert len(failed) >= 1
    assert of_a == [1] * (len(failed) + 1) + [2, 3]  # a's updates only after its creation
    b_at = events.index((tickets["b"], 1))
    last_creation_of_a = len(events) - 1 - events[::-1].index((tickets["a"], 1))
    assert b_at < last_creation_of_a  # b went out while a's creation was still failing
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)


async def test_ping_and_redeliver_answer_202_and_send_the_same_id_again(
    api: httpx.AsyncClient, team: Team
) -> None:
    async with receiving() as receiver:
        webhook = await hook(api, team, receiver)
        ping = await api.post(f"/api/v1/webhooks/{webhook['id']}/ping", headers=team.lead)
        assert ping.status_code == 202, ping.text
        (pinged,) = await arrivals(receiver, 1)
        assert pinged.json()["type"] == "io.bugtracker.webhook.ping.v1"
        Verifier(webhook["secret"]).verify(pinged.body, pinged.headers)
        again = await api.post(
            f"/api/v1/webhooks/{webhook['id']}/deliveries/{ping.json()['delivery_id']}/redeliver",
            headers=team.lead,
        )
        assert again.status_code == 202, again.text
        second = (await arrivals(receiver, 2))[1]
    assert second.webhook_id == pinged.webhook_id
    assert second.body == pinged.body
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)


async def test_after_a_rotation_both_secrets_sign_for_a_day(
    api: httpx.AsyncClient, team: Team
) -> None:
    async with receiving() as receiver:
        webhook = await hook(api, team, receiver)
        rotated = await api.post(
            f"/api/v1/webhooks/{webhook['id']}/rotate-secret", headers=team.lead
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != webhook["secret"]
        assert rotated.json()["previous_secret_expires_at"] is not None
        await new_ticket(api, team)
        (got,) = await arrivals(receiver, 1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Verifier(new_secret).verify(got.body, got.headers)
    Verifier(webhook["secret"]).verify(got.body, got.headers)
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://ci.example.com/hook", "https"),
        ("https://localhost/hook", "loopback"),
        ("https://127.0.0.2/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://user:pw@ci.example.com/hook", "credentials"),
    ],
)
async def test_urls_that_could_reach_inside_are_refused(
    api: httpx.AsyncClient, team: Team, url: str, why: str
) -> None:
    """The run allows 127.0.0.1 only (its receivers); everything else on the inside is
    refused with a 422 that names the reason, and nothing is created."""
    created = await api.post(
        f"/api/v1/projects/{team.key}/webhooks",
        json={"url": url, "events": ["ticket.*"]},
        headers=team.lead,
    )
    assert created.status_code == 422, (url, created.text)
    problem = created.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", "url"]
    listed = await api.get(f"/api/v1/projects/{team.key}/webhooks", headers=team.lead)
    assert all(w["url"] != url for w in listed.json()["items"])
    assert why  # the reason, for the reader of a failure


async def test_only_maintainers_manage_webhooks_and_strangers_learn_nothing(
    api: httpx.AsyncClient, team: Team
) -> None:
    async with receiving() as receiver:
        webhook = await hook(api, team, receiver)
        base = f"/api/v1/projects/{team.key}/webhooks"
        one = f"/api/v1/webhooks/{webhook['id']}"
        body = {"url": f"{receiver.url}/x", "events": ["ticket.*"]}
        for headers, status in ((team.dev, 403), (team.stranger, 404)):
            assert (await api.post(base, json=body, headers=headers)).status_code == status
            assert (await api.get(base, headers=headers)).status_code == status
            assert (await api.get(one, headers=headers)).status_code == status
            patched = await api.patch(one, json={"active": False}, headers=headers)
            assert patched.status_code == status
            assert (await api.post(f"{one}/ping", headers=headers)).status_code == status
            assert (await api.get(f"{one}/deliveries", headers=headers)).status_code == status
            assert (await api.delete(one, headers=headers)).status_code == status
        assert (await api.get(one, headers=team.lead)).json()["active"] is True
        assert receiver.received == []
        await api.delete(one, headers=team.lead)


async def test_a_webhook_receives_only_its_own_projects_events(
    api: httpx.AsyncClient, team: Team, system: Any
) -> None:
    with httpx.Client(base_url=system.gateway_url, timeout=15) as sync_api:
        _, other_lead = register_and_login(sync_api, "otherlead")
    other_key = "O" + uuid.uuid4().hex[:6].upper()
    other = await api.post(
        "/api/v1/projects", json={"key": other_key, "name": "Other"}, headers=other_lead
    )
    assert other.status_code == 201
    async with receiving() as ours, receiving() as theirs:
        webhook = await hook(api, team, ours, ["ticket.*"])
        other_hook = await api.post(
            f"/api/v1/projects/{other_key}/webhooks",
            json={"url": f"{theirs.url}/hook", "events": ["ticket.*"]},
            headers=other_lead,
        )
        assert other_hook.status_code == 201
        ticket_id = await new_ticket(api, team)
        (got,) = await arrivals(ours, 1)
        marker = await api.post(
            f"/api/v1/projects/{other_key}/tickets", json={"title": "theirs"}, headers=other_lead
        )
        assert marker.status_code == 201
        (theirs_got,) = await arrivals(theirs, 1)
        ours_after = list(ours.received)
    assert [r.json()["data"]["id"] for r in ours_after] == [ticket_id]
    assert got.json()["data"]["id"] == ticket_id
    assert theirs_got.json()["data"]["id"] == marker.json()["id"]  # not ours
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)


async def test_an_endpoint_failing_for_five_days_is_disabled_and_maintainers_told(
    api: httpx.AsyncClient, team: Team, infra: Stack
) -> None:
    async with receiving(lambda _: Answer(status=500)) as receiver:
        webhook = await hook(api, team, receiver)
        await new_ticket(api, team)
        await arrivals(receiver, 1)
        # Five days of failures, without the wait: the failure clock set back.
        db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
        try:

            async def failing() -> bool:
                since = await db.fetchval(
                    "SELECT failing_since FROM webhooks.webhooks WHERE id = $1",
                    uuid.UUID(webhook["id"]),
                )
                return since is not None

            await eventually(failing, what="the failure clock to start")
            await db.execute(
                "UPDATE webhooks.webhooks SET failing_since = now() - interval '6 days' "
                "WHERE id = $1",
                uuid.UUID(webhook["id"]),
            )
        finally:
            await db.close()

        async def disabled() -> dict[str, Any] | None:
            shown = (await api.get(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)).json()
            return shown if not shown["active"] else None

        shown = await eventually(disabled, within=30, what="the webhook to be disabled")
    assert shown["disabled_at"] is not None

    async def told() -> list[dict[str, Any]]:
        notes = await api.get("/api/v1/notifications", headers=team.lead)
        return [n for n in notes.json()["items"] if n["type"] == "webhook.disabled"]

    (note,) = await eventually(told, what="the maintainer's notification")
    assert note["project_id"] == team.project_id
    dev_notes = (await api.get("/api/v1/notifications", headers=team.dev)).json()["items"]
    assert all(n["type"] != "webhook.disabled" for n in dev_notes)
    back = await api.patch(
        f"/api/v1/webhooks/{webhook['id']}", json={"active": True}, headers=team.lead
    )
    assert back.status_code == 200
    assert (back.json()["active"], back.json()["disabled_at"]) == (True, None)
    await api.delete(f"/api/v1/webhooks/{webhook['id']}", headers=team.lead)
