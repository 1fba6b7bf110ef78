"""Losing the database costs only what was in flight: a request that cannot reach it
answers 503 problem+json (never 500, never a hang), and after every connection has been
dropped (what a PostgreSQL restart does) at most the first request fails."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.processes import free_port
from bugtracker_devstack.stack import Stack
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

DEV = uuid.uuid4()
REQUESTS_AFTER_THE_DROP = 12


def _is_database_unavailable(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers["content-type"] == "application/problem+json"
        and response.json()["code"] == "database_unavailable"
        and response.headers["retry-after"] == "1"
    )


async def test_dropping_every_connection_fails_at_most_the_next_request(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("DROP", {DEV: ProjectRole.DEVELOPER})
    created = await tickets_api.create(DEV, "DROP")
    assert created.status_code == 201, created.text
    # Several pooled connections, all dropped at once: each must be replaced, not tried.
    warm = await asyncio.gather(
        *(
            tickets_api.client.get("/api/v1/tickets/DROP-1", headers=tickets_api.headers(DEV))
            for _ in range(8)
        )
    )
    assert {answer.status_code for answer in warm} == {200}

    dropped = await superuser_db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename = 'bugtracker_tickets'"
    )
    assert dropped >= 1

    answers = []
    for _ in range(REQUESTS_AFTER_THE_DROP):
        answers.append(await tickets_api.create(DEV, "DROP"))
        answers.append(
            await tickets_api.client.get("/api/v1/tickets/DROP-1", headers=tickets_api.headers(DEV))
        )
    failed = [i for i, answer in enumerate(answers) if answer.status_code not in (200, 201)]
    assert failed in ([], [0]), [answers[i].text for i in failed]
    if failed:
        assert _is_database_unavailable(answers[0]), answers[0].text
    # Every create that answered 201 exists, numbered without gaps.
    keys = [a.json()["key"] for a in answers if a.status_code == 201]
    assert keys == [f"DROP-{n}" for n in range(2, 2 + len(keys))]


async def test_an_unreachable_database_answers_503(open_tickets_api: Any, infra: Stack) -> None:
    nowhere = infra.database_url("tickets").replace(f":{infra.postgres.port}/", f":{free_port()}/")
    async with open_tickets_api(database_url=nowhere) as api:
        api.projects.add("AWAY", {DEV: ProjectRole.DEVELOPER})
        read = await api.client.get("/api/v1/tickets/AWAY-1", headers=api.headers(DEV))
        write = await api.create(DEV, "AWAY")
    assert _is_database_unavailable(read), read.text
    assert _is_database_unavailable(write), write.text
