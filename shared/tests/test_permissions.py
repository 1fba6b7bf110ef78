from __future__ import annotations

import itertools
from pathlib import Path

from bugtracker_shared.permissions import (
    ADMIN_PERMISSIONS,
    PERMISSION_MEANINGS,
    ROLE_PERMISSIONS,
    Permission,
    ProjectRole,
    markdown_table,
    permissions_for,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_matrix_the_code_enforces() -> None:
    assert markdown_table() in README.read_text()


def test_every_permission_is_explained() -> None:
    assert set(PERMISSION_MEANINGS) == set(Permission)


def test_roles_are_cumulative_and_only_admins_and_owners_hold_everything() -> None:
    roles = list(ProjectRole)
    for lower, higher in itertools.pairwise(roles):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher]
    assert ROLE_PERMISSIONS[ProjectRole.OWNER] == ADMIN_PERMISSIONS
    assert permissions_for(None, is_admin=False) == frozenset()
    assert permissions_for(ProjectRole.VIEWER, is_admin=True) == ADMIN_PERMISSIONS
