"""Every process runs twice in the e2e system (`Stack.replicas`): what a user sees must not
depend on which replica serves them. A notification reaches the streams held by either
notifications replica, the gateways share one rate-limit budget, auth's replicas share one
login throttle, and losing one replica of every service loses no acknowledged write."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import cycle
from typing import Any

import httpx
import pytest
from bugtracker_devstack.stack import SERVICES, Stack, replica_name, wait_until_ready
from bugtracker_testkit import register_and_login, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _replicated(infra: Stack) -> None:
    if infra.replicas < 2:
        pytest.skip("the e2e system runs one replica (BUGTRACKER_TEST_REPLICAS=1)")


def project_with_member(
    api: httpx.Client, owner: dict[str, str], member_id: str
) -> tuple[str, str]:
    key = "P" + uuid.uuid4().hex[:6].upper()
    created = api.post("/api/v1/projects", json={"key": key, "name": "Replicas"}, headers=owner)
    assert created.status_code == 201, created.text
    added = api.post(
        f"/api/v1/projects/{key}/members",
        json={"user_id": member_id, "role": "developer"},
        headers=owner,
    )
    assert added.status_code == 201, added.text
    return key, created.json()["id"]


@dataclass
class Stream:
    """One SSE stream of notifications, read in a thread, straight from one replica."""

    url: str
    headers: dict[str, str]
    received: list[dict[str, Any]] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.url, timeout=30) as client,
                client.stream("GET", "/api/v1/notifications/stream", headers=self.headers) as r,
            ):
                assert r.status_code == 200, r.read()
                self.opened.set()
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        self.received.append(json.loads(line.removeprefix("data:")))
                    if self.stop.is_set():
                        return
        except httpx.TransportError:
            if not self.stop.is_set():  # after the test, the system's end closes it
                raise


def test_a_notification_reaches_the_streams_on_every_notifications_replica(
    infra: Stack, api: httpx.Client, settle_tickets_view: Any
) -> None:
    _, owner = register_and_login(api, "owner")
    dev_id, dev = register_and_login(api, "dev")
    key, project_id = project_with_member(api, owner, dev_id)
    settle_tickets_view(project_id)
    # One stream on each replica, bypassing the balancer: whichever replica's consumer
    # creates a notification, both streams must get it.
    streams = [
        Stream(infra.replica_url("notifications", replica), dev)
        for replica in range(infra.replicas)
    ]
    threads = [threading.Thread(target=s.run, daemon=True) for s in streams]
    for thread in threads:
        thread.start()
    for stream in streams:
        assert stream.opened.wait(10)
    # Several events: the quorum queue hands them to both replicas' consumers in turn.
    tickets = []
    for n in range(6):
        ticket = api.post(
            f"/api/v1/projects/{key}/tickets", json={"title": f"Spread {n}"}, headers=owner
        )
        assert ticket.status_code == 201, ticket.text
        tickets.append(ticket.json()["id"])
        assigned = api.put(
            f"/api/v1/tickets/{tickets[-1]}/assignee", json={"assignee_id": dev_id}, headers=owner
        )
        assert assigned.status_code == 200, assigned.text
    for stream in streams:
        wait_until(
            lambda s=stream: {n["ticket_id"] for n in s.received},  # type: ignore[misc]
            lambda seen: set(tickets) <= seen,
            within=15,
        )
        stream.stop.set()
    listed = api.get("/api/v1/notifications", headers=dev).json()["items"]
    assert {n["ticket_id"] for n in listed} >= set(tickets)


def remaining(answer: httpx.Response) -> int:
    """`r` of the RateLimit header (`"default";r=42;t=60`)."""
    found = re.search(r";r=(\d+)", answer.headers["ratelimit"])
    assert found, answer.headers
    return int(found.group(1))


def test_the_gateways_count_one_rate_limit_budget(system: Any) -> None:
    # A fresh user's budget: each request through either gateway takes one from it.
    with httpx.Client(base_url=system.gateway_urls[0], timeout=15) as first:
        _, who = register_and_login(first, "budget")
    counts = []
    for url in [*system.gateway_urls, *system.gateway_urls]:
        with httpx.Client(base_url=url, timeout=15) as client:
            answer = client.get("/api/v1/users/me", headers=who)
        assert answer.status_code == 200, answer.text
        counts.append(remaining(answer))
    assert counts == [counts[0] - n for n in range(len(counts))], counts


def test_a_logout_reaches_every_gateway_within_a_second(system: Any) -> None:
    # Each gateway consumes revocations from a queue of its own: a queue they shared would
    # give each of them half of the events (and the token would live on at the other).
    with httpx.Client(base_url=system.gateway_urls[0], timeout=15) as first:
        _, who = register_and_login(first, "leaver")
        assert first.post("/api/v1/auth/logout", headers=who).status_code == 204
    for url in system.gateway_urls:
        with httpx.Client(base_url=url, timeout=15) as client:
            refused = wait_until(
                lambda c=client: c.get("/api/v1/users/me", headers=who).status_code,  # type: ignore[misc]
                lambda status: status == 401,
                within=1.0,
            )
        assert refused == 401


def test_auths_replicas_share_one_login_throttle(infra: Stack, api: httpx.Client) -> None:
    # Straight to each auth replica: five failures spread over both are the free ones of
    # this (account, client) pair, so the sixth try waits, whichever replica it reaches.
    email = f"guarded-{uuid.uuid4().hex[:8]}@example.com"
    created = api.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "orchid-tundra-velvet-42", "display_name": "g"},
    )
    assert created.status_code == 201, created.text
    replicas = cycle(range(infra.replicas))
    wrong = {"email": email, "password": "not-the-password-at-all"}
    for _ in range(5):
        with httpx.Client(base_url=infra.replica_url("auth", next(replicas)), timeout=15) as c:
            assert c.post("/api/v1/auth/login", json=wrong).status_code == 401
    for replica in range(infra.replicas):
        with httpx.Client(base_url=infra.replica_url("auth", replica), timeout=15) as client:
            held = client.post("/api/v1/auth/login", json=wrong)
        assert held.status_code == 429, (replica, held.text)
        assert int(held.headers["retry-after"]) >= 1


@dataclass
class Writer:
    """Creates tickets and assigns them through both gateways until told to stop,
    retrying what a lost replica answers (502/503/504 or a dropped connection) with the
    same Idempotency-Key, and keeps what was acknowledged."""

    gateways: list[str]
    key: str
    owner: dict[str, str]
    assignee_id: str
    acknowledged: list[str] = field(default_factory=list)
    retried: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _send(self, clients: Iterator[httpx.Client], method: str, url: str, **kw: Any) -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = next(clients).request(method, url, **kw)
                if answer.status_code not in (502, 503, 504):
                    return answer
            except httpx.TransportError:
                pass
            self.retried += 1
            assert time.monotonic() < deadline, f"{method} {url} kept failing"
            time.sleep(0.1)

    def run(self) -> None:
        pool = [httpx.Client(base_url=url, timeout=15) for url in self.gateways]
        clients = cycle(pool)
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                headers = self.owner | {"Idempotency-Key": uuid.uuid4().hex}
                created = self._send(
                    clients,
                    "POST",
                    f"/api/v1/projects/{self.key}/tickets",
                    json={"title": f"Under fire {n}"},
                    headers=headers,
                )
                assert created.status_code in (200, 201), created.text
                ticket_id = created.json()["id"]
                assigned = self._send(
                    clients,
                    "PUT",
                    f"/api/v1/tickets/{ticket_id}/assignee",
                    json={"assignee_id": self.assignee_id},
                    headers=self.owner,
                )
                assert assigned.status_code == 200, assigned.text
                self.acknowledged.append(ticket_id)
        finally:
            for client in pool:
                client.close()


def test_losing_one_replica_of_every_service_loses_no_acknowledged_write(
    infra: Stack, system: Any, api: httpx.Client, settle_tickets_view: Any
) -> None:
    _, owner = register_and_login(api, "survivor")
    dev_id, dev = register_and_login(api, "assignee")
    key, project_id = project_with_member(api, owner, dev_id)
    settle_tickets_view(project_id)
    writer = Writer(system.gateway_urls, key, owner, dev_id)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    wait_until(lambda: len(writer.acknowledged), lambda done: done >= 5, within=30)
    # SIGKILL, not a graceful stop: in-flight requests and unconfirmed work are cut off.
    last = infra.replicas - 1
    for process in (*SERVICES, "gateway"):
        child = system.processes[replica_name(process, last)]
        child.kill()
        child.wait(timeout=10)
    before = len(writer.acknowledged)
    wait_until(lambda: len(writer.acknowledged), lambda done: done >= before + 5, within=60)
    writer.stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()

    # Every acknowledged ticket is there, assigned, and its assignment notified.
    for ticket_id in writer.acknowledged:
        ticket = api.get(f"/api/v1/tickets/{ticket_id}", headers=owner)
        assert ticket.status_code == 200, ticket.text
        assert ticket.json()["assignee_id"] == dev_id

    def notified() -> set[str]:
        items: set[str] = set()
        cursor: str | None = None
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/v1/notifications", headers=dev, params=params).json()
            items |= {n["ticket_id"] for n in page["items"] if n["type"] == "ticket.assigned"}
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    wait_until(notified, lambda seen: set(writer.acknowledged) <= seen, within=60)

    # The killed replicas come back, for the tests after this one.
    for process in (*SERVICES, "gateway"):
        name = replica_name(process, last)
        log = (system.logs / f"{name}.restarted.log").open("wb")
        system.processes[name] = infra.launch(process, log, last)
    wait_until_ready(infra, (*SERVICES, "gateway"), timeout=90)
    stopped = [name for name, child in system.processes.items() if child.poll() is not None]
    assert not stopped, stopped
