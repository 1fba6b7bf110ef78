from __future__ import annotations

import pytest
from bugtracker_tickets.application.markdown import render
from bugtracker_tickets.domain.errors import ProjectNotFoundError
from bugtracker_tickets.domain.tickets import Priority, project_ref, ticket_key


def test_priorities_sort_by_rank_not_by_name() -> None:
    assert sorted(Priority, key=lambda p: p.rank) == [
        Priority.LOW,
        Priority.MEDIUM,
        Priority.HIGH,
        Priority.CRITICAL,
    ]


def test_ticket_keys() -> None:
    assert ticket_key("BUG", 12) == "BUG-12"


@pytest.mark.parametrize("ref", ["../users", "a", "BUG-1", "x" * 40, ""])
def test_only_ids_and_keys_name_a_project(ref: str) -> None:
    with pytest.raises(ProjectNotFoundError):
        project_ref(ref)


def test_project_refs_are_normalised() -> None:
    assert project_ref("bug") == "BUG"


def test_markdown_links_survive_sanitising() -> None:
    html = render("[docs](https://example.com/a)")
    assert 'href="https://example.com/a"' in html
    assert "noopener" in html


def test_markdown_is_rendered_and_sanitised() -> None:
    html = render("[x](javascript:alert(1)) <img src=x onerror=alert(1)> *ok*")
    assert "href" not in html
    assert "<img" not in html
    assert "<em>ok</em>" in html
