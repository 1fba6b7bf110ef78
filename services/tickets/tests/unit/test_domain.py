from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime

import bugtracker_tickets.application.markdown as markdown_module
import pytest
from bugtracker_tickets.application.markdown import (
    MARKUP,
    MAX_MARKUP_CHARACTERS,
    render,
    to_html,
)
from bugtracker_tickets.domain.errors import ProjectNotFoundError
from bugtracker_tickets.domain.tickets import (
    Priority,
    Ticket,
    TicketPatch,
    project_ref,
    ticket_key,
)


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


def test_images_become_links_so_nothing_loads_when_a_ticket_is_shown() -> None:
    html = render('![screen *shot*](https://tracker.example/pixel.png "t") text')
    assert "<img" not in html
    assert '<a href="https://tracker.example/pixel.png"' in html
    assert ">screen shot</a>" in html
    assert "noopener" in html


def test_attachment_references_link_to_the_download_path_outside_code() -> None:
    ident = uuid.uuid4()
    path = f"/api/v1/attachments/{ident}/content"
    html = render(
        f"![shot](attachment:{ident}) and [log](attachment:{ident}) "
        f"and `[c](attachment:{ident})`\n\n    ![b](attachment:{ident})\n"
    )
    assert html.count(f'<a href="{path}"') == 2
    assert f'<a href="{path}" rel="noopener noreferrer nofollow">shot</a>' in html
    assert f'<a href="{path}" rel="noopener noreferrer nofollow">log</a>' in html
    assert "<img" not in html
    # In code the reference is text, left as written.
    assert f"<code>[c](attachment:{ident})</code>" in html
    assert f"<pre><code>![b](attachment:{ident})\n</code></pre>" in html


@pytest.mark.parametrize("shape", ["![", "[", "[a](", "*a", "|x|y|\n"])
def test_input_that_explodes_the_parser_is_shown_as_plain_text(shape: str) -> None:
    text = (shape * 50_000)[:50_000]
    started = time.process_time()
    html = render(text)
    # Linear escaping, not the parser: a few ms for 50 k characters where the parser
    # took up to 1.5 s (measured); the bound leaves room for a slow shared machine.
    assert time.process_time() - started < 0.25
    assert html.startswith("<pre>")
    assert "<a" not in html


def test_ordinary_markdown_under_the_bound_is_still_rendered() -> None:
    text = "## Steps\n\n" + "1. open *Reports* and click [save](https://x.example)\n" * 150
    assert sum(text.count(c) for c in MARKUP) <= MAX_MARKUP_CHARACTERS
    html = render(text)
    assert html.startswith("<h2>Steps</h2>")
    assert html.count("<em>Reports</em>") == 150


async def test_long_texts_render_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = markdown_module.render

    def spy(text: str) -> str:
        seen.append(threading.get_ident())
        return original(text)

    markdown_module.render = spy
    try:
        assert await to_html("short") == "<p>short</p>\n"
        assert await to_html("long " * 1_000) == original("long " * 1_000)
    finally:
        markdown_module.render = original
    assert seen[0] == loop_thread
    assert seen[1] != loop_thread


def _ticket() -> Ticket:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Ticket(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        key="BUG-1",
        number=1,
        title="Login fails",
        description="",
        type="bug",
        priority=Priority.MEDIUM,
        status="open",
        reporter_id=uuid.uuid4(),
        created_at=now,
        updated_at=now,
        labels=["auth"],
        due_date=date(2026, 2, 1),
    )


def test_a_patch_sets_only_the_fields_it_gives_and_reports_real_changes() -> None:
    ticket = _ticket()
    changes = TicketPatch(title="Login fails", priority=Priority.HIGH, labels=()).apply_to(ticket)
    assert changes == {"priority": (Priority.MEDIUM, Priority.HIGH), "labels": (["auth"], [])}
    assert (ticket.title, ticket.priority, ticket.labels) == ("Login fails", Priority.HIGH, [])
    assert ticket.due_date == date(2026, 2, 1)


def test_a_patch_clears_the_due_date_with_none_and_keeps_it_by_default() -> None:
    ticket = _ticket()
    assert TicketPatch().apply_to(ticket) == {}
    assert ticket.due_date == date(2026, 2, 1)
    assert TicketPatch(due_date=None).apply_to(ticket) == {"due_date": (date(2026, 2, 1), None)}
    assert ticket.due_date is None
