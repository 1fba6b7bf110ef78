"""The projects application layer through in-memory fakes of its ports (fakes.py): the
real use cases and domain rules, no database, no broker, no HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_projects.application.use_cases import ProjectChanges
from bugtracker_projects.domain.errors import (
    AlreadyMemberError,
    ForbiddenError,
    LastOwnerError,
    MemberNotFoundError,
    ProjectArchivedError,
    ProjectKeyTakenError,
    ProjectNotFoundError,
    RestoreExpiredError,
    UnknownUserError,
)
from bugtracker_shared.etags import PreconditionFailedError
from bugtracker_shared.permissions import ProjectRole

from services.projects.tests.unit.fakes import FakeOutbox, ProjectsWorld

R = ProjectRole


# -- create ------------------------------------------------------------------------------


async def test_create_makes_the_creator_owner_and_emits_created(world: ProjectsWorld) -> None:
    alice = world.caller("Alice")
    project = await world.projects.create_project(alice, key="BUG", name="Bugs", description="d")
    assert world.database.roles(project.id) == {alice.user_id: R.OWNER}
    (member,) = world.database.state.members.values()
    assert (member.display_name, member.email) == ("Alice", "alice@example.com")
    (event,) = world.database.events
    assert event.name == "project.created"
    assert event.data["owner_id"] == str(alice.user_id)
    assert (event.data["key"], event.sequence, event.subject) == ("BUG", 1, str(project.id))
    assert world.database.commits == 1


async def test_a_taken_key_is_refused_and_nothing_is_written(world: ProjectsWorld) -> None:
    await world.projects.create_project(world.caller("a"), key="BUG", name="1", description="")
    before = world.database.snapshot()
    with pytest.raises(ProjectKeyTakenError):
        await world.projects.create_project(world.caller("b"), key="BUG", name="2", description="")
    assert world.database.state == before


async def test_listing_shows_members_their_projects_and_admins_all(world: ProjectsWorld) -> None:
    _, first = await world.project_with("AAA", dev=R.DEVELOPER)
    await world.project_with("BBB")
    listed = await world.projects.list_projects(first["dev"], limit=10, cursor=None)
    assert [p.key for p in listed.items] == ["AAA"]
    admin = world.caller("root", admin=True)
    page = await world.projects.list_projects(admin, limit=1, cursor=None)
    assert [p.key for p in page.items] == ["AAA"]
    assert page.next_cursor is not None
    rest = await world.projects.list_projects(admin, limit=1, cursor=page.next_cursor)
    assert [p.key for p in rest.items] == ["BBB"]


# -- members -----------------------------------------------------------------------------


async def test_adding_a_member_bumps_the_project_and_emits_member_added(
    world: ProjectsWorld,
) -> None:
    project, people = await world.project_with(dev=R.DEVELOPER)
    assert world.database.roles(project.id) == {
        people["owner"].user_id: R.OWNER,
        people["dev"].user_id: R.DEVELOPER,
    }
    assert project.version == 2
    event = world.database.events[-1]
    assert event.name == "project.member_added"
    assert event.data == {
        "project_id": str(project.id),
        "project_key": "BUG",
        "user_id": str(people["dev"].user_id),
        "role": "developer",
    }
    assert event.sequence == 2


@pytest.mark.parametrize(
    ("adder", "role", "error"),
    [
        ("dev", R.VIEWER, ForbiddenError),
        ("maintainer", R.OWNER, ForbiddenError),
        ("viewer", R.REPORTER, ForbiddenError),
    ],
)
async def test_who_may_grant_which_role(
    world: ProjectsWorld, adder: str, role: ProjectRole, error: type[Exception]
) -> None:
    _, people = await world.project_with(dev=R.DEVELOPER, maintainer=R.MAINTAINER, viewer=R.VIEWER)
    newcomer = world.caller("newcomer")
    before = world.database.snapshot()
    with pytest.raises(error):
        await world.projects.add_member(people[adder], "BUG", user_id=newcomer.user_id, role=role)
    assert world.database.state == before


async def test_a_maintainer_adds_members_but_not_twice_nor_unknown_users(
    world: ProjectsWorld,
) -> None:
    project, people = await world.project_with(maintainer=R.MAINTAINER)
    newcomer = world.caller("newcomer")
    await world.projects.add_member(
        people["maintainer"], "bug", user_id=newcomer.user_id, role=R.MAINTAINER
    )
    with pytest.raises(AlreadyMemberError):
        await world.projects.add_member(
            people["maintainer"], "BUG", user_id=newcomer.user_id, role=R.VIEWER
        )
    inactive = world.users.add("gone", is_active=False)
    with pytest.raises(UnknownUserError):
        await world.projects.add_member(people["owner"], "BUG", user_id=inactive, role=R.VIEWER)
    assert world.database.roles(project.id)[newcomer.user_id] is R.MAINTAINER
    assert inactive not in world.database.roles(project.id)


async def test_the_last_owner_can_neither_be_demoted_nor_leave(world: ProjectsWorld) -> None:
    project, people = await world.project_with(maintainer=R.MAINTAINER)
    owner = people["owner"]
    before = world.database.snapshot()
    with pytest.raises(LastOwnerError):
        await world.projects.change_role(owner, "BUG", owner.user_id, R.MAINTAINER)
    with pytest.raises(LastOwnerError):
        await world.projects.remove_member(owner, "BUG", owner.user_id)
    assert world.database.state == before
    # With a second owner, the first may step down.
    await world.projects.change_role(owner, "BUG", people["maintainer"].user_id, R.OWNER)
    demoted = await world.projects.change_role(owner, "BUG", owner.user_id, R.DEVELOPER)
    assert demoted.role is R.DEVELOPER
    assert world.database.roles(project.id) == {
        owner.user_id: R.DEVELOPER,
        people["maintainer"].user_id: R.OWNER,
    }
    event = world.database.events[-1]
    assert event.name == "project.member_role_changed"
    assert event.data["changes"] == {"role": {"from": "owner", "to": "developer"}}


async def test_role_changes_need_the_right_role(world: ProjectsWorld) -> None:
    _, people = await world.project_with(maintainer=R.MAINTAINER, dev=R.DEVELOPER, viewer=R.VIEWER)
    with pytest.raises(ForbiddenError):
        await world.projects.change_role(people["dev"], "BUG", people["viewer"].user_id, R.REPORTER)
    with pytest.raises(ForbiddenError):  # touching an owner needs an owner
        await world.projects.change_role(
            people["maintainer"], "BUG", people["owner"].user_id, R.VIEWER
        )
    with pytest.raises(ForbiddenError):  # so does handing out `owner`
        await world.projects.change_role(
            people["maintainer"], "BUG", people["viewer"].user_id, R.OWNER
        )
    changed = await world.projects.change_role(
        people["maintainer"], "BUG", people["viewer"].user_id, R.REPORTER
    )
    assert changed.role is R.REPORTER
    with pytest.raises(MemberNotFoundError):
        await world.projects.change_role(
            people["owner"], "BUG", world.caller("x").user_id, R.VIEWER
        )


async def test_members_leave_and_maintainers_remove_others_but_not_owners(
    world: ProjectsWorld,
) -> None:
    project, people = await world.project_with(
        maintainer=R.MAINTAINER, dev=R.DEVELOPER, viewer=R.VIEWER
    )
    with pytest.raises(ForbiddenError):
        await world.projects.remove_member(people["dev"], "BUG", people["viewer"].user_id)
    with pytest.raises(ForbiddenError):
        await world.projects.remove_member(people["maintainer"], "BUG", people["owner"].user_id)
    await world.projects.remove_member(people["dev"], "BUG", people["dev"].user_id)
    await world.projects.remove_member(people["maintainer"], "BUG", people["viewer"].user_id)
    assert set(world.database.roles(project.id)) == {
        people["owner"].user_id,
        people["maintainer"].user_id,
    }
    assert world.database.event_names()[-2:] == ["project.member_removed"] * 2
    # A former member no longer sees the project.
    with pytest.raises(ProjectNotFoundError):
        await world.projects.access(people["viewer"], "BUG")


# -- update, archive, delete, restore ----------------------------------------------------


async def test_update_checks_the_version_and_records_the_changes(world: ProjectsWorld) -> None:
    project, people = await world.project_with(maintainer=R.MAINTAINER, dev=R.DEVELOPER)
    with pytest.raises(ForbiddenError):
        await world.projects.update_project(
            people["dev"], "BUG", ProjectChanges(name="x"), expected_version=None
        )
    with pytest.raises(PreconditionFailedError):
        await world.projects.update_project(
            people["maintainer"], "BUG", ProjectChanges(name="x"), expected_version=1
        )
    updated = await world.projects.update_project(
        people["maintainer"], "BUG", ProjectChanges(name="Bugs"), expected_version=project.version
    )
    assert (updated.name, updated.version) == ("Bugs", project.version + 1)
    assert world.database.project(project.id).name == "Bugs"
    event = world.database.events[-1]
    assert (event.name, event.data["changes"]) == (
        "project.updated",
        {"name": {"from": "BUG project", "to": "Bugs"}},
    )


async def test_an_archived_project_is_read_only_until_unarchived(world: ProjectsWorld) -> None:
    project, people = await world.project_with(maintainer=R.MAINTAINER, dev=R.DEVELOPER)
    with pytest.raises(ForbiddenError):
        await world.projects.set_archived(
            people["dev"], "BUG", archived=True, expected_version=None
        )
    archived = await world.projects.set_archived(
        people["maintainer"], "BUG", archived=True, expected_version=None
    )
    assert archived.is_archived
    assert world.database.events[-1].name == "project.archived"
    with pytest.raises(ProjectArchivedError):
        await world.projects.update_project(
            people["owner"], "BUG", ProjectChanges(name="x"), expected_version=None
        )
    commits = world.database.commits
    again = await world.projects.set_archived(
        people["maintainer"], "BUG", archived=True, expected_version=None
    )
    assert again.version == archived.version
    assert world.database.commits == commits
    await world.projects.set_archived(people["owner"], "BUG", archived=False, expected_version=None)
    assert not world.database.project(project.id).is_archived
    assert world.database.events[-1].data["changes"] == {"archived": {"from": True, "to": False}}


async def test_only_an_owner_deletes_and_restores_within_the_window(world: ProjectsWorld) -> None:
    project, people = await world.project_with(maintainer=R.MAINTAINER)
    with pytest.raises(ForbiddenError):
        await world.projects.delete_project(people["maintainer"], "BUG")
    await world.projects.delete_project(people["owner"], "BUG")
    assert world.database.events[-1].name == "project.deleted"
    with pytest.raises(ProjectNotFoundError):
        await world.projects.access(people["owner"], "BUG")
    with pytest.raises(ForbiddenError):
        await world.projects.restore_project(people["maintainer"], "BUG")
    with pytest.raises(ProjectNotFoundError):
        await world.projects.restore_project(world.caller("stranger"), "BUG")
    restored = await world.projects.restore_project(people["owner"], str(project.id))
    assert not restored.is_deleted
    assert world.database.events[-1].data["changes"] == {"deleted": {"from": True, "to": False}}
    assert (await world.projects.access(people["maintainer"], "BUG")).role is R.MAINTAINER


async def test_a_project_deleted_too_long_ago_cannot_be_restored(world: ProjectsWorld) -> None:
    project, people = await world.project_with()
    await world.projects.delete_project(people["owner"], "BUG")
    world.database.state.projects[project.id].deleted_at = datetime.now(UTC) - timedelta(days=31)
    with pytest.raises(RestoreExpiredError):
        await world.projects.restore_project(people["owner"], "BUG")
    assert world.database.project(project.id).is_deleted


async def test_a_failed_use_case_commits_nothing(
    world: ProjectsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox fails after the membership and the project's version were written."""
    project, people = await world.project_with()
    newcomer = world.caller("newcomer")
    before = world.database.snapshot()

    async def broken(self: FakeOutbox, event: object) -> None:
        raise ConnectionError("outbox unavailable")

    monkeypatch.setattr(FakeOutbox, "add", broken)
    with pytest.raises(ConnectionError):
        await world.projects.add_member(
            people["owner"], "BUG", user_id=newcomer.user_id, role=R.VIEWER
        )
    assert world.database.state == before
    assert newcomer.user_id not in world.database.roles(project.id)


async def test_membership_views_and_co_members_read_committed_state(
    world: ProjectsWorld,
) -> None:
    project, people = await world.project_with(dev=R.DEVELOPER)
    (page,) = await world.projects.memberships(after=None, limit=10)
    assert (page.id, page.members) == (
        project.id,
        {people["owner"].user_id: R.OWNER, people["dev"].user_id: R.DEVELOPER},
    )
    assert await world.projects.co_members(people["dev"].user_id) == [people["owner"].user_id]


async def test_the_maintainers_are_the_maintainers_and_owners(world: ProjectsWorld) -> None:
    project, people = await world.project_with(dev=R.DEVELOPER, lead=R.MAINTAINER, viewer=R.VIEWER)
    assert await world.projects.maintainers(project.id) == sorted(
        [people["owner"].user_id, people["lead"].user_id]
    )
    assert await world.projects.maintainers(uuid.uuid4()) == []
