"""The ticket query language: parse, check, the date helpers and InvalidQueryError."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from bugtracker_tickets.domain.errors import InvalidQueryError
from bugtracker_tickets.domain.query_language import (
    MAX_ITEMS,
    MAX_QUERY_LENGTH,
    RESERVED_WORDS,
    SORT_VALUES,
    Comparison,
    ParsedQuery,
    Term,
    Words,
    check,
    parse,
    parse_date,
    relative_age,
)
from hypothesis import assume, given
from hypothesis import strategies as st


def term(
    name: str,
    *values: str,
    op: Comparison = "=",
    negated: bool = False,
    position: int = 0,
) -> Term:
    return Term(name=name, values=values, op=op, negated=negated, position=position)


def only_term(query: str) -> Term:
    parsed = parse(query)
    assert parsed.words == ()
    assert len(parsed.terms) == 1
    return parsed.terms[0]


def parse_error(query: str) -> InvalidQueryError:
    with pytest.raises(InvalidQueryError) as caught:
        parse(query)
    return caught.value


def check_error(query: str, *, cross_project: bool = False) -> InvalidQueryError:
    parsed = parse(query)
    with pytest.raises(InvalidQueryError) as caught:
        check(parsed, cross_project=cross_project)
    return caught.value


# -- every term of the contract ---------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status:open,in_review", term("status", "open", "in_review")),
        ("-status:done", term("status", "done", negated=True)),
        ("assignee:@me", term("assignee", "@me")),
        ("assignee:none", term("assignee", "none")),
        ("assignee:ann@example.com", term("assignee", "ann@example.com")),
        ("assignee:@me,none", term("assignee", "@me", "none")),
        ("reporter:@me", term("reporter", "@me")),
        (
            "reporter:bob.smith+bugs@mail.example.org",
            term("reporter", "bob.smith+bugs@mail.example.org"),
        ),
        ("label:ui", term("label", "ui")),
        ("-label:wontfix", term("label", "wontfix", negated=True)),
        ("priority:>=high", term("priority", "high", op=">=")),
        ("priority:>low", term("priority", "low", op=">")),
        ("priority:<critical", term("priority", "critical", op="<")),
        ("priority:<=medium", term("priority", "medium", op="<=")),
        ("priority:high,critical", term("priority", "high", "critical")),
        ("type:bug", term("type", "bug")),
        ('milestone:"v1.0"', term("milestone", "v1.0")),
        ("milestone:v1.0", term("milestone", "v1.0")),
        ('milestone:"Release 2, final"', term("milestone", "Release 2, final")),
        ("milestone:none", term("milestone", "none")),
        ("is:open", term("is", "open")),
        ("is:closed", term("is", "closed")),
        ("is:blocked", term("is", "blocked")),
        ("is:unassigned", term("is", "unassigned")),
        ("-is:blocked", term("is", "blocked", negated=True)),
        ("has:attachment", term("has", "attachment")),
        ("created:>=2026-01-01", term("created", "2026-01-01", op=">=")),
        ("created:2026-01-01", term("created", "2026-01-01")),
        ("updated:<7d", term("updated", "7d", op="<")),
        ("updated:>2w", term("updated", "2w", op=">")),
        ("updated:<=12h", term("updated", "12h", op="<=")),
        ("due:<=2026-12-31", term("due", "2026-12-31", op="<=")),
        ("field.severity:major", term("field.severity", "major")),
        ("field.Severity:>=3", term("field.Severity", "3", op=">=")),
        ('field.team:"Core, infra"', term("field.team", "Core, infra")),
        ("field.url:https://example.com/a?b=c", term("field.url", "https://example.com/a?b=c")),
        ("parent:ABC-12", term("parent", "ABC-12")),
        ("project:BUG", term("project", "BUG")),
        ("project:BUG,WEB", term("project", "BUG", "WEB")),
        ("sort:priority-desc", term("sort", "priority-desc")),
    ],
)
def test_every_term_of_the_contract_parses_and_checks(query: str, expected: Term) -> None:
    parsed = parse(query)

    assert parsed == ParsedQuery(terms=(expected,), words=())
    check(parsed, cross_project=True)


@pytest.mark.parametrize("value", SORT_VALUES)
def test_every_sort_order_checks(value: str) -> None:
    check(parse(f"sort:{value}"), cross_project=False)


def test_a_query_mixes_terms_and_words_joined_by_whitespace() -> None:
    query = 'status:open  -label:wontfix\t"login page" crash\n-"stack trace" -flaky  '

    parsed = parse(query)

    assert parsed.terms == (
        term("status", "open", position=0),
        term("label", "wontfix", negated=True, position=13),
    )
    assert parsed.words == (
        Words(text="login page", phrase=True, negated=False, position=28),
        Words(text="crash", phrase=False, negated=False, position=41),
        Words(text="stack trace", phrase=True, negated=True, position=47),
        Words(text="flaky", phrase=False, negated=True, position=62),
    )
    check(parsed, cross_project=False)


def test_an_empty_or_blank_query_has_nothing() -> None:
    assert parse("") == ParsedQuery(terms=(), words=())
    assert parse(" \t\n\u3000") == ParsedQuery(terms=(), words=())


def test_term_names_are_lower_cased_but_field_keys_are_kept() -> None:
    assert only_term("Status:open").name == "status"
    assert only_term("FIELD.Severity:x").name == "field.Severity"
    assert only_term("-IS:open") == term("is", "open", negated=True)


def test_values_are_kept_as_written() -> None:
    assert only_term("status:In_Review").values == ("In_Review",)


def test_quoted_values_may_hold_commas_spaces_and_comparisons() -> None:
    assert only_term('status:open,"in review","a,b"').values == ("open", "in review", "a,b")
    assert only_term('label:">x"') == term("label", ">x")
    assert only_term('created:>="2026-01-01"') == term("created", "2026-01-01", op=">=")
    assert only_term('label:"(x) | y"').values == ("(x) | y",)


def test_only_the_first_value_takes_a_comparison() -> None:
    assert only_term("status:a,>b").values == ("a", ">b")


def test_escapes_inside_quotes_take_the_next_character() -> None:
    assert parse(r'"say \"hi\""').words == (
        Words(text='say "hi"', phrase=True, negated=False, position=0),
    )
    assert only_term(r'label:"back\\slash"').values == ("back\\slash",)
    assert only_term(r'label:"x\y"').values == ("xy",)


def test_a_backslash_outside_quotes_is_an_ordinary_character() -> None:
    assert parse(r"a\b").words == (Words(text=r"a\b", phrase=False, negated=False, position=0),)


@pytest.mark.parametrize(
    "word", ["o'brien", "foo-bar", "v1.0", "ann@example.com", "C++", "naïve", "or", "x=1", "<p>"]
)
def test_bare_words(word: str) -> None:
    assert parse(word).words == (Words(text=word, phrase=False, negated=False, position=0),)


@pytest.mark.parametrize("word", sorted(RESERVED_WORDS))
def test_reserved_words_can_be_searched_for_when_quoted(word: str) -> None:
    assert parse(f'"{word}"').words == (Words(text=word, phrase=True, negated=False, position=0),)


def test_values_know_where_they_are() -> None:
    assert only_term('status:open,"in review",x').value_positions == (7, 12, 24)
    assert only_term("-priority:>=high").value_positions == (12,)


def test_whitespace_is_any_unicode_whitespace() -> None:
    parsed = parse("a\u3000b\u00a0c")
    assert [word.text for word in parsed.words] == ["a", "b", "c"]


# -- syntax errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "says"),
    [
        ('"abc', 0, "unterminated quote"),
        ('a "b c', 2, "unterminated quote"),
        ('status:"open', 7, "unterminated quote"),
        ('"ends with \\"', 0, "unterminated quote"),
        ('"ends with \\', 0, "unterminated quote"),
        (":x", 0, "no term name"),
        ("a -:x", 3, "no term name"),
        ("-", 0, "lone '-'"),
        ("a - b", 2, "lone '-'"),
        ("a -", 2, "lone '-'"),
        ("--a", 1, "cannot start with '-'"),
        ("(a)", 0, "Parentheses are not supported"),
        ("a (b", 2, "Parentheses are not supported"),
        ("a)", 1, "Parentheses are not supported"),
        ("-(a", 1, "Parentheses are not supported"),
        ("status:(open)", 7, "Parentheses are not supported"),
        ("status:open)", 11, "Parentheses are not supported"),
        ('"a"(', 3, "Parentheses are not supported"),
        ("a|b", 1, "'|' (OR) is not supported"),
        ("status:open|closed", 11, "'|' (OR) is not supported"),
        ("status:|", 7, "'|' (OR) is not supported"),
        ("a OR b", 2, "OR is not supported"),
        ("NOT a", 0, "NOT is not supported"),
        ("-AND", 1, "AND is not supported"),
        ('a"b"', 1, "separate terms with a space"),
        ('"a"b', 3, "separate terms with a space"),
        ('status:"a"b', 10, "separate terms with a space"),
        ('status:a"b"', 8, "separate terms with a space"),
        ("status:", 7, "empty value for status:"),
        ("status: open", 7, "empty value for status:"),
        ("status:a,", 9, "empty value for status:"),
        ("status:a,,b", 9, "empty value for status:"),
        ('status:""', 7, "empty value for status:"),
        ("priority:>=", 11, "empty value for priority:"),
        ('""', 0, "empty phrase"),
        ('a " "', 2, "empty phrase"),
        ('-""', 1, "empty phrase"),
        ("priority:>=high,critical", 15, "comparison (>=) takes one value"),
        ("12:30", 0, "'12' is not a term name"),
        ("a.b.c:x", 0, "'a.b.c' is not a term name"),
        ("-field.:x", 1, "'field.' is not a term name"),
        ("_x:y", 0, "'_x' is not a term name"),
    ],
)
def test_syntax_errors_say_where(query: str, position: int, says: str) -> None:
    error = parse_error(query)

    assert error.position == position
    assert says in str(error)


def test_a_query_has_at_most_1000_characters() -> None:
    parse("x" * MAX_QUERY_LENGTH)
    error = parse_error("x" * (MAX_QUERY_LENGTH + 1))
    assert error.position == MAX_QUERY_LENGTH
    assert "at most 1000 characters" in str(error)


def test_a_query_has_at_most_50_terms_and_words() -> None:
    parse(" ".join(["a", "b:c"] * (MAX_ITEMS // 2)))
    query = " ".join(["a", "b:c"] * (MAX_ITEMS // 2)) + "   last"
    error = parse_error(query)
    assert error.position == query.index("last")
    assert "at most 50 terms and words" in str(error)


# -- check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "says"),
    [
        ("foo:bar", 0, "Unknown term foo:"),
        ("a -foo:bar", 2, "Unknown term foo:"),
        ("field:x", 0, "Unknown term field:"),
        ("project:BUG", 0, "project: is only allowed in a search across projects"),
        ("-sort:due-asc", 0, "sort: cannot be negated"),
        ("label:>=ui", 6, "label: cannot be compared with >="),
        ("a status:<open", 9, "status: cannot be compared with <"),
        ("-type:>bug", 6, "type: cannot be compared with >"),
        ("is:pending", 3, "is: takes open, closed, blocked, unassigned, not 'pending'"),
        ("is:open,pending", 8, "is: takes"),
        ("has:file", 4, "has: takes attachment"),
        ("priority:urgent", 9, "priority: takes low, medium, high, critical"),
        ("priority:>=urgent", 11, "priority: takes"),
        ("priority:High", 9, "priority: takes"),
        ("created:yesterday", 8, "created: takes a date (YYYY-MM-DD) or an age"),
        ("created:2026-02-30", 8, "created: takes a date"),
        ("created:2026-1-1", 8, "created: takes a date"),
        ("updated:0d", 8, "updated: takes"),
        ("updated:<3651d", 9, "updated: takes"),
        ("updated:07d", 8, "updated: takes"),
        ("updated:7y", 8, "updated: takes"),
        ("due:<=soon", 6, "due: takes"),
        ("sort:name", 5, "sort: takes created-asc, created-desc"),
        ("sort:due-asc sort:due-desc", 13, "sort: may be given only once"),
        ("sort:due-asc,due-desc", 13, "sort: takes one value"),
        ("assignee:bob", 9, "assignee: takes @me, none or an email address"),
        ("assignee:@me,bob@", 13, "assignee: takes"),
        ("assignee:@you", 9, "assignee: takes"),
        ("reporter:none", 9, "reporter: takes @me or an email address"),
        ("parent:abc_12", 7, "parent: takes a ticket key like ABC-12"),
        ("parent:ABC", 7, "parent: takes a ticket key"),
        ('milestone:" "', 10, "empty value for milestone:"),
        ('status:open," "', 12, "empty value for status:"),
        ("a status:open priority:huge", 23, "priority: takes"),
    ],
)
def test_check_errors_point_at_the_term_or_value(query: str, position: int, says: str) -> None:
    error = check_error(query)

    assert error.position == position
    assert says in str(error)


def test_keys_are_case_insensitive_as_everywhere_in_the_api() -> None:
    check(parse("parent:abc-12"), cross_project=False)
    check(parse("project:bug parent:Bug-3"), cross_project=True)


def test_an_unknown_term_lists_the_known_ones() -> None:
    message = str(check_error("colour:red"))

    assert message.endswith(
        "the terms are assignee, created, due, field.<key>, has, is, label, milestone, "
        "parent, priority, project, reporter, sort, status, type, updated."
    )


@pytest.mark.parametrize(
    ("query", "position", "says"),
    [
        ("-project:BUG", 0, "project: cannot be negated"),
        ("project:bug-1", 8, "project: takes a project key like ABC"),
        ("project:BUG,X", 12, "project: takes a project key"),
    ],
)
def test_check_errors_across_projects(query: str, position: int, says: str) -> None:
    error = check_error(query, cross_project=True)

    assert error.position == position
    assert says in str(error)


def test_fields_compare_and_take_any_value() -> None:
    check(parse('field.points:>=3 field.team:"Core, infra" -field.x:<z'), cross_project=False)


def test_check_reports_the_first_problem_in_query_order() -> None:
    parsed = parse("is:nope has:nope")
    reversed_terms = ParsedQuery(terms=parsed.terms[::-1], words=())

    with pytest.raises(InvalidQueryError) as caught:
        check(reversed_terms, cross_project=False)
    assert caught.value.position == 3


def test_check_points_at_the_term_when_values_have_no_positions() -> None:
    parsed = ParsedQuery(terms=(term("is", "x", position=5),), words=())

    with pytest.raises(InvalidQueryError) as caught:
        check(parsed, cross_project=False)
    assert caught.value.position == 5


def test_check_refuses_a_term_without_values() -> None:
    parsed = ParsedQuery(terms=(term("status", position=2),), words=())

    with pytest.raises(InvalidQueryError) as caught:
        check(parsed, cross_project=False)
    assert caught.value.position == 2


def test_value_positions_do_not_count_in_equality() -> None:
    assert only_term("  status:a") == term("status", "a", position=2)


# -- the date helpers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "age"),
    [
        ("7d", timedelta(days=7)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("3650d", timedelta(days=3650)),
        ("3650w", timedelta(weeks=3650)),
        ("2026-01-01", None),
        ("0d", None),
        ("3651d", None),
        ("07d", None),
        ("7D", None),
        ("7", None),
        ("\u0667d", None),  # an Arabic-Indic seven
        ("", None),
    ],
)
def test_relative_age(value: str, age: timedelta | None) -> None:
    assert relative_age(value) == age


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("2026-01-01", date(2026, 1, 1)),
        ("2028-02-29", date(2028, 2, 29)),
        ("2026-02-29", None),
        ("2026-13-01", None),
        ("20260101", None),
        ("2026-01-01T00:00", None),
        ("7d", None),
        ("", None),
    ],
)
def test_parse_date(value: str, day: date | None) -> None:
    assert parse_date(value) == day


# -- the error ---------------------------------------------------------------------------


def test_invalid_query_error_carries_its_position() -> None:
    error = InvalidQueryError("An unterminated quote.", 4)

    assert error.code == "invalid_query"
    assert str(error) == "An unterminated quote."
    assert error.position == 4
    assert error.extra == {"position": 4}


def test_invalid_query_error_is_a_422() -> None:
    from bugtracker_tickets.main import DOMAIN_ERRORS

    assert DOMAIN_ERRORS[InvalidQueryError] == 422


# -- properties --------------------------------------------------------------------------

_NO_BARE = frozenset(',"()|\\')
_NO_WORD = frozenset(':"()|')
_SPACES = st.sampled_from([" ", "  ", "\t", "\n", " \u3000 "])
_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_NAMES = st.one_of(
    st.sampled_from(["status", "assignee", "label", "priority", "created", "sort", "is", "foo_1"]),
    st.text(_ALPHANUMERIC, min_size=1, max_size=8).map(lambda key: f"field.{key}"),
)
_VALUES = st.text(min_size=1, max_size=12)
_WORD_CHARACTERS = st.characters(exclude_characters=_NO_WORD, exclude_categories=["Cs"]).filter(
    lambda char: not char.isspace()
)


def _is_bare_word(text: str) -> bool:
    return not text.startswith("-") and text not in RESERVED_WORDS


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render_value(value: str) -> str:
    """A value as bare text when it reads back the same, else quoted (a value starting
    with "=" after a ">" would read as ">=")."""
    bare = not value.startswith(("<", ">", "=")) and not any(
        char.isspace() or char in _NO_BARE for char in value
    )
    return value if bare else _quote(value)


@st.composite
def _terms(draw: st.DrawFn) -> Term:
    op: Comparison = draw(st.sampled_from(["=", "=", ">", ">=", "<", "<="]))
    count = draw(st.integers(1, 4)) if op == "=" else 1
    return Term(
        name=draw(_NAMES),
        values=tuple(draw(_VALUES) for _ in range(count)),
        op=op,
        negated=draw(st.booleans()),
        position=0,
    )


_WORDS = st.one_of(
    st.builds(
        Words,
        text=st.text(_WORD_CHARACTERS, min_size=1, max_size=12).filter(_is_bare_word),
        phrase=st.just(False),
        negated=st.booleans(),
        position=st.just(0),
    ),
    st.builds(
        Words,
        text=st.text(min_size=1, max_size=12).filter(lambda text: bool(text.strip())),
        phrase=st.just(True),
        negated=st.booleans(),
        position=st.just(0),
    ),
)


def _render(items: list[Term | Words], spaces: list[str]) -> tuple[str, list[Term | Words]]:
    """The query text of `items` and the items with the positions they have in it (and
    their value positions)."""
    text = spaces[0]
    placed: list[Term | Words] = []
    for item, space in zip(items, spaces[1:], strict=True):
        position = len(text)
        text += "-" if item.negated else ""
        if isinstance(item, Words):
            text += _quote(item.text) if item.phrase else item.text
            placed.append(Words(item.text, item.phrase, item.negated, position))
        else:
            text += f"{item.name}:" + ("" if item.op == "=" else item.op)
            value_positions = []
            for index, value in enumerate(item.values):
                text += "," if index else ""
                value_positions.append(len(text))
                text += _render_value(value)
            placed.append(
                Term(
                    item.name,
                    item.values,
                    item.op,
                    item.negated,
                    position,
                    tuple(value_positions),
                )
            )
        text += space
    return text, placed


@given(
    st.lists(st.one_of(_terms(), _WORDS), max_size=8).flatmap(
        lambda items: st.tuples(
            st.just(items), st.lists(_SPACES, min_size=len(items) + 1, max_size=len(items) + 1)
        )
    )
)
def test_rendering_a_query_and_parsing_it_gives_it_back(
    drawn: tuple[list[Term | Words], list[str]],
) -> None:
    items, spaces = drawn
    text, placed = _render(items, spaces)
    assume(len(text) <= MAX_QUERY_LENGTH)

    parsed = parse(text)

    assert parsed.terms == tuple(item for item in placed if isinstance(item, Term))
    assert parsed.words == tuple(item for item in placed if isinstance(item, Words))
    assert [found.value_positions for found in parsed.terms] == [
        item.value_positions for item in placed if isinstance(item, Term)
    ]


_QUERY_TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [*'ab:,"\\-()|<>=@. \t', "OR", "is", "status:", "priority:>=", "field.x:", "7d"]
        ),
        max_size=30,
    ).map("".join),
)


def _error_of(query: str, *, cross_project: bool) -> InvalidQueryError | None:
    try:
        check(parse(query), cross_project=cross_project)
    except InvalidQueryError as error:
        return error
    return None


@given(_QUERY_TEXT, st.booleans())
def test_parse_and_check_only_ever_raise_invalid_query_with_a_position_in_the_query(
    query: str, cross_project: bool
) -> None:
    error = _error_of(query, cross_project=cross_project)

    if error is not None:
        assert 0 <= error.position <= len(query)
        assert str(error)


@given(_QUERY_TEXT)
def test_items_are_in_query_order_and_start_where_they_say(query: str) -> None:
    try:
        parsed = parse(query)
    except InvalidQueryError:
        return
    items: list[Term | Words] = [*parsed.terms, *parsed.words]
    positions = sorted(item.position for item in items)
    assert len(set(positions)) == len(positions)
    for found in parsed.terms:
        start = found.position + found.negated
        assert query[found.position] == "-" if found.negated else query[start] != "-"
        assert query[start : start + len(found.name)].lower() == found.name.lower()
        assert query[start + len(found.name)] == ":"
    for word in parsed.words:
        start = word.position + word.negated
        assert query[word.position] == "-" if word.negated else query[start] != "-"
        if word.phrase:
            assert query[start] == '"'
        else:
            assert query.startswith(word.text, start)


_VALID_TERMS = st.sampled_from(
    [
        "status:open,in_review",
        "-status:done",
        "assignee:@me,none",
        "-reporter:ann@example.com",
        "label:ui",
        "priority:>=high",
        'milestone:"v1.0"',
        "is:blocked",
        "-has:attachment",
        "created:>=2026-01-01",
        "updated:<7d",
        "due:<=2026-12-31",
        "field.severity:>2",
        "parent:ABC-12",
        "project:BUG",
        "crash",
        '-"login page"',
    ]
)


@given(st.lists(_VALID_TERMS, max_size=MAX_ITEMS), st.sampled_from([*SORT_VALUES, None]))
def test_any_mix_of_valid_terms_checks(items: list[str], sort: str | None) -> None:
    query = " ".join(items + ([f"sort:{sort}"] if sort else []))
    assume(len(query) <= MAX_QUERY_LENGTH and len(items) + bool(sort) <= MAX_ITEMS)

    check(parse(query), cross_project=True)


@given(st.integers(1, 3650), st.sampled_from(["d", "w", "h"]))
def test_every_relative_age_in_range_is_one(number: int, unit: str) -> None:
    age = relative_age(f"{number}{unit}")

    assert age is not None
    assert age == number * {"d": timedelta(days=1), "w": timedelta(weeks=1)}.get(
        unit, timedelta(hours=1)
    )
    check(parse(f"updated:<{number}{unit}"), cross_project=False)


@given(st.dates(min_value=date(1000, 1, 1)))
def test_every_iso_date_is_one(day: date) -> None:
    assert parse_date(day.isoformat()) == day
    assert relative_age(day.isoformat()) is None
    check(parse(f"due:<={day.isoformat()}"), cross_project=False)
