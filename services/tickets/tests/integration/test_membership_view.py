"""The tickets service's membership view (ADR 0023) on the real database: seeded from the
projects snapshot, moved by `project.*` events in version order, read in one statement,
trusted only while seeded, connected and prompt."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.db import create_engine
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.messaging import Broker
from bugtracker_shared.permissions import ADMIN_PERMISSIONS, ROLE_PERMISSIONS, ProjectRole
from bugtracker_shared.tokens import Principal
from bugtracker_tickets.infrastructure.membership_view import LAG_HOLD_SECONDS, MembershipView

pytestmark = pytest.mark.integration

TOKEN = "internal-test-token"
OWNER, DEV, VIEWER, STRANGER, ADMIN = (uuid.uuid4() for _ in range(5))
ALPHA, GONE = uuid.uuid4(), uuid.uuid4()


def caller(user_id: uuid.UUID, role: str = "member") -> Principal:
    return Principal(user_id=user_id, session_id=uuid.uuid4(), role=role, token="t")


def snapshot_item(project_id: uuid.UUID, key: str, version: int, **state: Any) -> dict[str, Any]:
    members = state.pop("members", {})
    return {
        "id": str(project_id),
        "key": key,
        "archived": state.get("archived", False),
        "deleted": state.get("deleted", False),
        "version": version,
        "members": [{"user_id": str(u), "role": r.value} for u, r in members.items()],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Snapshot:
    """The projects service's /internal/memberships, two items a page."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.tokens_seen: list[str | None] = []
        self.router = respx.Router(base_url="http://projects.test")
        self.router.get("/internal/memberships").mock(side_effect=self._page)

    def _page(self, request: httpx.Request) -> httpx.Response:
        self.tokens_seen.append(request.headers.get("x-internal-token"))
        after = request.url.params.get("after")
        items = sorted(self.items, key=lambda i: i["id"])
        if after:
            items = [i for i in items if i["id"] > after]
        page = items[:2]
        more = len(items) > 2
        return httpx.Response(
            200, json={"items": page, "next_after": page[-1]["id"] if more else None}
        )


@pytest.fixture
async def setting(infra: Stack) -> AsyncIterator[tuple[MembershipView, Snapshot, Clock, Broker]]:
    migrated(infra, "tickets")
    await truncate_schema(infra, "tickets")
    engine = create_engine(infra.database_url("tickets"), schema="tickets", pool_size=2)
    broker = Broker(infra.rabbitmq.url, connection_name="membership-view-test")
    snapshot, clock = Snapshot(), Clock()
    client = httpx.AsyncClient(
        base_url="http://projects.test", transport=httpx.MockTransport(snapshot.router.handler)
    )
    view = MembershipView(engine, broker, client, TOKEN, lag_seconds=1.0, clock=clock)
    try:
        yield view, snapshot, clock, broker
    finally:
        await broker.close()
        await client.aclose()
        await engine.dispose()


def event(name: str, subject: uuid.UUID, sequence: int, data: dict[str, Any], **extra: Any) -> Any:
    return CloudEvent(
        id=uuid.uuid4(),
        source="/bugtracker/projects",
        type=f"io.bugtracker.{name}.v1",
        subject=str(subject),
        time=extra.get("time", datetime.now(UTC)),
        sequence=sequence,
        data=data,
    )


def member_event(name: str, user_id: uuid.UUID, sequence: int, role: str = "developer") -> Any:
    data = {"project_id": str(ALPHA), "project_key": "ALPHA", "user_id": str(user_id)}
    return event(name, ALPHA, sequence, data | {"role": role})


def project_event(name: str, sequence: int, **state: Any) -> Any:
    data = {"id": str(ALPHA), "key": "ALPHA", "name": "A", "description": "", "version": sequence}
    data |= {"archived": False, "deleted": False} | state
    return event(name, ALPHA, sequence, data)


async def role_of(view: MembershipView, user_id: uuid.UUID, ref: str = "ALPHA") -> str | None:
    access = await view.access(ref, caller(user_id))
    return access.role.value if access and access.role else None


async def test_the_snapshot_seeds_every_project_and_member(setting: Any) -> None:
    view, snapshot, _, _ = setting
    snapshot.items = [
        snapshot_item(
            ALPHA, "ALPHA", 3, members={DEV: ProjectRole.DEVELOPER, VIEWER: ProjectRole.VIEWER}
        ),
        snapshot_item(GONE, "GONE", 5, deleted=True, members={DEV: ProjectRole.OWNER}),
        *(
            snapshot_item(uuid.uuid4(), f"P{n}", 1, members={OWNER: ProjectRole.OWNER})
            for n in range(3)
        ),
    ]
    await view.seed()
    assert snapshot.tokens_seen == [TOKEN] * 3  # five projects, two a page

    access = await view.access("alpha", caller(DEV))  # keys in any letter case
    assert access is not None
    assert (access.project_id, access.project_key, access.archived) == (ALPHA, "ALPHA", False)
    assert access.permissions == ROLE_PERMISSIONS[ProjectRole.DEVELOPER]
    assert await role_of(view, VIEWER, str(ALPHA)) == "viewer"
    assert await view.access("ALPHA", caller(STRANGER)) is None
    assert await view.access("GONE", caller(DEV)) is None  # deleted: nobody sees it
    admin = await view.access("ALPHA", caller(ADMIN, "admin"))
    assert admin is not None
    assert admin.permissions == ADMIN_PERMISSIONS
    assert admin.role is None

    assert await view.is_member(ALPHA, VIEWER)
    assert not await view.is_member(GONE, DEV)
    assert await view.visible_projects(caller(DEV)) == [ALPHA]
    assert len(await view.visible_projects(caller(ADMIN, "admin"))) == 4


async def test_events_apply_in_version_order_and_stale_ones_are_dropped(setting: Any) -> None:
    view, snapshot, _, _ = setting
    created = project_event("project.created", 1, owner_id=str(OWNER))
    await view.handle_event(created)
    await view.handle_event(member_event("project.member_added", DEV, 2))
    assert (await role_of(view, OWNER), await role_of(view, DEV)) == ("owner", "developer")

    await view.handle_event(member_event("project.member_role_changed", DEV, 3, "viewer"))
    await view.handle_event(member_event("project.member_added", DEV, 2))  # redelivered late
    assert await role_of(view, DEV) == "viewer"

    await view.handle_event(member_event("project.member_removed", DEV, 4))
    await view.handle_event(member_event("project.member_removed", DEV, 4))  # twice: harmless
    assert await view.access("ALPHA", caller(DEV)) is None

    await view.handle_event(project_event("project.archived", 5, archived=True))
    await view.handle_event(project_event("project.updated", 4))  # older: does not unarchive
    access = await view.access("ALPHA", caller(OWNER))
    assert access is not None
    assert access.archived

    # A snapshot taken before the newest event does not undo it...
    snapshot.items = [snapshot_item(ALPHA, "ALPHA", 4, members={DEV: ProjectRole.OWNER})]
    await view.seed()
    assert await view.access("ALPHA", caller(DEV)) is None
    # ...and a newer one replaces the whole membership.
    snapshot.items = [snapshot_item(ALPHA, "ALPHA", 6, members={DEV: ProjectRole.OWNER})]
    await view.seed()
    assert (await role_of(view, DEV), await role_of(view, OWNER)) == ("owner", None)

    await view.handle_event(project_event("project.deleted", 7, deleted=True))
    assert await view.access("ALPHA", caller(DEV)) is None


async def test_the_view_is_trusted_only_seeded_connected_and_prompt(setting: Any) -> None:
    view, _, clock, broker = setting
    broker.start()
    await broker.wait_connected()
    assert not view.trusted  # not seeded yet
    await view.seed()
    assert view.trusted

    late = datetime.now(UTC) - timedelta(seconds=3)
    await view.handle_event(project_event("project.created", 1, owner_id=str(OWNER)))
    await view.handle_event(
        event(
            "project.member_added",
            ALPHA,
            2,
            {
                "project_id": str(ALPHA),
                "project_key": "ALPHA",
                "user_id": str(DEV),
                "role": "developer",
            },
            time=late,
        )
    )
    assert not view.trusted  # an event applied 3 s after it happened
    clock.now += LAG_HOLD_SECONDS
    assert view.trusted

    await broker.close()
    assert not view.trusted
