"""The HTTP API on real PostgreSQL; notifications are made by the same use case the
consumer calls, directly, so these tests need not wait for the broker."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.integration

Notify = Callable[..., Awaitable[list[str]]]
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@pytest.fixture
def notify(app: FastAPI, client: httpx.AsyncClient, assigned: Any) -> Notify:
    """Handle `count` assignments of `user` by someone else; the event ids, oldest first."""

    async def make(user: uuid.UUID, count: int = 1, prefix: str = "BUG") -> list[str]:
        event_ids = []
        for n in range(1, count + 1):
            event = assigned(actor_id=uuid.uuid4(), assignee_id=user, key=f"{prefix}-{n}")
            await app.state.use_cases.handle_event(event)
            event_ids.append(str(event.id))
        return event_ids

    return make


async def listing(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> httpx.Response:
    response = await client.get("/api/v1/notifications", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_a_user_sees_only_their_own_notifications(
    client: httpx.AsyncClient, keys: Any, notify: Notify
) -> None:
    ann, bob = uuid.uuid4(), uuid.uuid4()
    await notify(ann, 2)

    assert len((await listing(client, keys.headers(ann))).json()["items"]) == 2
    assert (await listing(client, keys.headers(bob))).json() == {"items": [], "next_cursor": None}
    count = await client.get("/api/v1/notifications/unread-count", headers=keys.headers(bob))
    assert count.json() == {"count": 0}

    anns = (await listing(client, keys.headers(ann))).json()["items"][0]["id"]
    stolen = await client.post(f"/api/v1/notifications/{anns}/read", headers=keys.headers(bob))
    assert stolen.status_code == 404
    assert stolen.headers["content-type"] == "application/problem+json"
    assert stolen.json()["code"] == "not_found"
    await client.post("/api/v1/notifications/read-all", headers=keys.headers(bob))
    count = await client.get("/api/v1/notifications/unread-count", headers=keys.headers(ann))
    assert count.json() == {"count": 2}


async def test_reading_one_then_all(client: httpx.AsyncClient, keys: Any, notify: Notify) -> None:
    user = uuid.uuid4()
    headers = keys.headers(user)
    await notify(user, 3)

    async def unread_count() -> int:
        response = await client.get("/api/v1/notifications/unread-count", headers=headers)
        assert response.status_code == 200
        count: int = response.json()["count"]
        return count

    assert await unread_count() == 3
    newest = (await listing(client, headers)).json()["items"][0]

    read = await client.post(f"/api/v1/notifications/{newest['id']}/read", headers=headers)
    assert read.status_code == 200
    body = read.json()
    assert body["id"] == newest["id"]
    assert body["read_at"] is not None
    assert await unread_count() == 2
    again = await client.post(f"/api/v1/notifications/{newest['id']}/read", headers=headers)
    assert again.json()["read_at"] == body["read_at"]  # the first reading is what counts

    unread = (await listing(client, headers, unread="true")).json()["items"]
    assert len(unread) == 2
    assert newest["id"] not in {item["id"] for item in unread}

    all_read = await client.post("/api/v1/notifications/read-all", headers=headers)
    assert all_read.status_code == 204
    assert all_read.content == b""
    assert await unread_count() == 0
    assert (await listing(client, headers, unread="true")).json()["items"] == []
    items = (await listing(client, headers)).json()["items"]
    assert len(items) == 3
    assert all(item["read_at"] for item in items)


async def test_unknown_notification_is_404(client: httpx.AsyncClient, keys: Any) -> None:
    response = await client.post(
        f"/api/v1/notifications/{uuid.uuid4()}/read", headers=keys.headers(uuid.uuid4())
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_pages_follow_the_cursor_and_link_header_newest_first(
    client: httpx.AsyncClient, keys: Any, notify: Notify
) -> None:
    user = uuid.uuid4()
    headers = keys.headers(user)
    oldest_first = await notify(user, 5)

    first = await listing(client, headers, limit=2)
    body = first.json()
    assert [item["event_id"] for item in body["items"]] == oldest_first[:-3:-1]
    assert body["next_cursor"]
    link = LINK.match(first.headers["link"])
    assert link is not None
    assert link["url"].startswith("/api/v1/notifications?limit=2&cursor=")

    # A notification arriving between pages does not shift the pages after the first.
    await notify(user, 1, prefix="NEW")

    seen = [item["event_id"] for item in body["items"]]
    url: str | None = link["url"]
    while url is not None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200
        page = response.json()
        seen += [item["event_id"] for item in page["items"]]
        next_link = LINK.match(response.headers.get("link", ""))
        assert (next_link is None) == (page["next_cursor"] is None)
        url = next_link["url"] if next_link else None
    assert seen == oldest_first[::-1]

    everything = (await listing(client, headers, limit=100)).json()
    assert everything["next_cursor"] is None
    times = [item["created_at"] for item in everything["items"]]
    assert times == sorted(times, reverse=True)


async def test_the_unread_filter_is_kept_across_pages(
    client: httpx.AsyncClient, keys: Any, notify: Notify
) -> None:
    user = uuid.uuid4()
    headers = keys.headers(user)
    await notify(user, 3)

    first = await listing(client, headers, unread="true", limit=1)
    link = LINK.match(first.headers["link"])
    assert link is not None
    assert "unread=true" in link["url"]
    assert "cursor=" in link["url"]
    second = await client.get(link["url"], headers=headers)
    assert len(second.json()["items"]) == 1
    assert second.json()["items"][0]["id"] != first.json()["items"][0]["id"]


def _cursor(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        _cursor(["2026-11-26T10:00:00+00:00"]),
        _cursor(["yesterday", str(uuid.uuid4())]),
        _cursor(["2026-11-26T10:00:00+00:00", "not-a-uuid"]),
        _cursor(["2026-11-26T10:00:00", str(uuid.uuid4())]),
        _cursor({"created_at": "2026-11-26T10:00:00+00:00"}),
    ],
)
async def test_a_bad_cursor_is_a_422_problem(
    client: httpx.AsyncClient, keys: Any, cursor: str
) -> None:
    response = await client.get(
        "/api/v1/notifications", params={"cursor": cursor}, headers=keys.headers(uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["0", "101", "many"])
async def test_limit_outside_1_to_100_is_a_422_problem(
    client: httpx.AsyncClient, keys: Any, limit: str
) -> None:
    response = await client.get(
        "/api/v1/notifications", params={"limit": limit}, headers=keys.headers(uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


ROUTES = [
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/notifications/unread-count"),
    ("POST", f"/api/v1/notifications/{uuid.uuid4()}/read"),
    ("POST", "/api/v1/notifications/read-all"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_a_valid_access_token(
    client: httpx.AsyncClient, keys: Any, method: str, path: str
) -> None:
    missing = await client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "unauthorized"

    user = uuid.uuid4()
    expired = keys.token(user, ttl=timedelta(minutes=-5))
    forged = type(keys)(kid=keys.kid).token(user)  # the right kid, another private key
    for token, code in [(expired, "token_expired"), (forged, "invalid_token")]:
        response = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["code"] == code


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "consumers": "ok",
        "notification_feed": "ok",  # listening (docs/adr/0036)
    }
