from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from bugtracker_projects.domain.errors import ForbiddenError, ProjectNotFoundError
from bugtracker_projects.domain.projects import Caller, Project, access_for, check_role_grant
from bugtracker_shared.permissions import ROLE_PERMISSIONS, Permission, ProjectRole


def project() -> Project:
    now = datetime.now(UTC)
    return Project(uuid.uuid4(), "BUG", "Bugs", "", uuid.uuid4(), now, now)


def caller(is_admin: bool = False) -> Caller:
    return Caller(user_id=uuid.uuid4(), is_admin=is_admin, token="t")


def test_viewer_may_read_and_comment_but_not_create() -> None:
    assert Permission.TICKET_COMMENT in ROLE_PERMISSIONS[ProjectRole.VIEWER]
    assert Permission.TICKET_CREATE not in ROLE_PERMISSIONS[ProjectRole.VIEWER]
    assert Permission.TICKET_ASSIGN in ROLE_PERMISSIONS[ProjectRole.DEVELOPER]
    assert Permission.TICKET_ASSIGN not in ROLE_PERMISSIONS[ProjectRole.REPORTER]


def test_outsiders_get_not_found_and_admins_get_everything() -> None:
    with pytest.raises(ProjectNotFoundError):
        access_for(project(), caller(), None)
    admin = access_for(project(), caller(is_admin=True), None)
    assert admin.permissions == frozenset(Permission)


@pytest.mark.parametrize(
    ("role", "granted", "allowed"),
    [
        (ProjectRole.DEVELOPER, ProjectRole.VIEWER, False),
        (ProjectRole.MAINTAINER, ProjectRole.MAINTAINER, True),
        (ProjectRole.MAINTAINER, ProjectRole.OWNER, False),
        (ProjectRole.OWNER, ProjectRole.OWNER, True),
    ],
)
def test_role_grants(role: ProjectRole, granted: ProjectRole, allowed: bool) -> None:
    access = access_for(project(), caller(), role)
    if allowed:
        check_role_grant(access, granted)
    else:
        with pytest.raises(ForbiddenError):
            check_role_grant(access, granted)
