"""The ticket query language: the `query` parameter of ticket lists, parsed and checked.

Pure domain code (no I/O, no SQL): `parse` turns the text into terms and full-text words,
`check` validates term names and value shapes, and `relative_age` / `parse_date` turn
date values into something the caller can make bounds of. Every problem is an
`InvalidQueryError` (422 `invalid_query`) with the 0-based offset of the offending
character in the query (the end of the query when something is missing there).

Items are separated by whitespace and joined by AND::

    status:open,in_review -label:wontfix priority:>=high updated:<7d "login page" crash

Grammar (EBNF; "space" is any Unicode whitespace, "letter" and "digit" are ASCII)::

    query       = { space } [ item { space { space } item } ] { space } ;
    item        = [ "-" ] ( term | phrase | word ) ;
    term        = name ":" [ comparison ] value { "," value } ;
    name        = letter { letter | digit | "_" } [ "." key ] ;
    key         = ( letter | digit | "_" ) { letter | digit | "_" } ;
    comparison  = ">=" | "<=" | ">" | "<" ;
    value       = quoted | bare-value ;
    bare-value  = value-char { value-char } ;
    value-char  = ? any character but space, ",", '"', "(", ")", "|" ? ;
    phrase      = quoted ;
    quoted      = '"' { ? any character but '"' and "\\" ? | "\\" ? any character ? } '"' ;
    word        = word-start { word-char } ;
    word-char   = ? any character but space, ":", '"', "(", ")", "|" ? ;
    word-start  = word-char - "-" ;

Rules the EBNF does not say:

* An item whose unquoted text reaches a ":" is a term: the text before the ":" must be a
  `name` (to search for text with a colon, quote it: `"12:30"`). A name is lower-cased up
  to its first "."; what follows (the key of `field.<key>`) is kept as written.
* A `comparison` is taken from the start of a term's first value only, and a term with a
  comparison has exactly one value. A quoted value is never a comparison
  (`label:">x"` is the label `>x`), and "=" is not one (`priority:=high` has the value
  `=high`, which `check` refuses).
* Inside quotes, a backslash takes the next character as it is (`\\"` is a quote, `\\\\`
  a backslash). Outside quotes a backslash is an ordinary character.
* Values and phrases may not be empty (`status:`, `status:a,`, `status:""`, `""`); a
  blank phrase (`" "`) is refused by `parse`, a blank value (`label:" "`) by `check`.
* Positions are 0-based offsets in the query; an item's is that of its "-" if negated.
* An item must be followed by whitespace or the end: `a"b"` and `status:"a"b` are errors.
* Not supported (an error saying so, so that they can mean something later): parentheses,
  `|`, and the bare words `OR`, `AND` and `NOT` (all items are joined by AND; negate an
  item with a leading "-"). Quoted, they are ordinary text.
* At most `MAX_QUERY_LENGTH` characters and `MAX_ITEMS` items (terms and words).

`check` then knows the term names (see `TERM_NAMES`) and the values each one takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final, Literal

from bugtracker_tickets.domain.errors import InvalidQueryError
from bugtracker_tickets.domain.tickets import PROJECT_KEY, TICKET_KEY, Priority

Comparison = Literal["=", ">", ">=", "<", "<="]

MAX_QUERY_LENGTH: Final = 1000
MAX_ITEMS: Final = 50
MAX_RELATIVE_AGE: Final = 3650

# Term names `check` knows, besides `field.<key>`.
TERM_NAMES: Final = frozenset(
    {
        "status",
        "assignee",
        "reporter",
        "label",
        "priority",
        "type",
        "milestone",
        "is",
        "has",
        "created",
        "updated",
        "due",
        "parent",
        "project",
        "sort",
    }
)
FIELD_PREFIX: Final = "field."
ORDERED_TERMS: Final = frozenset({"priority", "created", "updated", "due"})
DATE_TERMS: Final = frozenset({"created", "updated", "due"})
NOT_NEGATABLE: Final = frozenset({"sort", "project"})
IS_VALUES: Final = ("open", "closed", "blocked", "unassigned")
HAS_VALUES: Final = ("attachment",)
PRIORITY_VALUES: Final = tuple(priority.value for priority in Priority)
SORT_VALUES: Final = tuple(
    f"{key}-{direction}"
    for key in ("created", "updated", "priority", "due")
    for direction in ("asc", "desc")
)
ME: Final = "@me"
NONE: Final = "none"
RESERVED_WORDS: Final = frozenset({"OR", "AND", "NOT"})

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)?", re.ASCII)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_RELATIVE_AGE = re.compile(r"([1-9][0-9]{0,3})([dwh])", re.ASCII)
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,.]+(?:\.[^@\s,.]+)+")
_UNIT = {"d": timedelta(days=1), "w": timedelta(weeks=1), "h": timedelta(hours=1)}
_COMPARISONS: Final[tuple[Comparison, ...]] = (">=", "<=", ">", "<")

_QUOTE = '"'
_ESCAPE = "\\"
_UNSUPPORTED = "()|"
# Besides whitespace, what ends a bare word and a bare value.
_WORD_STOPS = frozenset(':"' + _UNSUPPORTED)
_VALUE_STOPS = frozenset(',"' + _UNSUPPORTED)
_PARENTHESES = (
    "Parentheses are not supported: all terms are joined by AND "
    "(quote text with parentheses to search for it)."
)
_BAR = (
    "'|' (OR) is not supported: list alternatives with commas, e.g. status:open,in_review "
    "(quote text with '|' to search for it)."
)


@dataclass(frozen=True)
class Term:
    """`name:value[,value...]`, e.g. `-status:done` or `priority:>=high`."""

    # Lower-cased up to its first "." ("status", "field.severity" with the key as written).
    name: str
    # One or more, quotes removed and escapes resolved.
    values: tuple[str, ...]
    # "=" unless the (only) value starts with >, >=, < or <=.
    op: Comparison
    negated: bool
    # The offset of the term's first character (its "-" when negated).
    position: int
    # The offset of each value (after the comparison; its opening quote when quoted):
    # where `check` points at a bad value. Empty for a term not made by `parse`.
    value_positions: tuple[int, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Words:
    """Full-text: a bare word or a "quoted phrase"."""

    text: str
    phrase: bool
    negated: bool
    position: int


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[Term, ...]
    words: tuple[Words, ...]


# -- parsing -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: str) -> None:
        self.text = query
        self.at = 0
        self.terms: list[Term] = []
        self.words: list[Words] = []

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def at_separator(self) -> bool:
        """At the end of the query or at whitespace: where an item may end."""
        return self.at >= len(self.text) or self.text[self.at].isspace()

    def skip_space(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def parse(self) -> ParsedQuery:
        self.skip_space()
        while self.at < len(self.text):
            if len(self.terms) + len(self.words) >= MAX_ITEMS:
                raise InvalidQueryError(
                    f"A query has at most {MAX_ITEMS} terms and words.", self.at
                )
            self.item()
            self.end_of_item()
            self.skip_space()
        return ParsedQuery(terms=tuple(self.terms), words=tuple(self.words))

    def end_of_item(self) -> None:
        if self.at_separator():
            return
        char = self.peek()
        self.unsupported(char)
        raise InvalidQueryError(f"Unexpected {char!r}: separate terms with a space.", self.at)

    def unsupported(self, char: str) -> None:
        if char in ("(", ")"):
            raise InvalidQueryError(_PARENTHESES, self.at)
        if char == "|":
            raise InvalidQueryError(_BAR, self.at)

    def item(self) -> None:
        start = self.at
        negated = self.peek() == "-"
        if negated:
            self.at += 1
            if self.at_separator():
                raise InvalidQueryError(
                    "A lone '-': put it right before the term or word to exclude.", start
                )
            if self.peek() == "-":
                raise InvalidQueryError("A term or word cannot start with '-'.", self.at)
        char = self.peek()
        self.unsupported(char)
        if char == _QUOTE:
            text_at = self.at
            text = self.quoted()
            if not text.strip():
                raise InvalidQueryError("An empty phrase.", text_at)
            self.words.append(Words(text=text, phrase=True, negated=negated, position=start))
            return
        run_at = self.at
        while not self.at_separator() and self.peek() not in _WORD_STOPS:
            self.at += 1
        run = self.text[run_at : self.at]
        if self.peek() == ":":
            self.term(start, negated, run_at, run)
            return
        if run in RESERVED_WORDS:
            raise InvalidQueryError(
                f"{run} is not supported: all terms are joined by AND; put '-' before a "
                f'term or word to exclude it (quote it to search for it: "{run}").',
                run_at,
            )
        self.words.append(Words(text=run, phrase=False, negated=negated, position=start))

    def term(self, start: int, negated: bool, name_at: int, name: str) -> None:
        if not name:
            raise InvalidQueryError("A ':' with no term name before it.", self.at)
        if not _NAME.fullmatch(name):
            raise InvalidQueryError(
                f"{name!r} is not a term name (quote text with ':' to search for it).",
                name_at,
            )
        head, dot, key = name.partition(".")
        self.at += 1  # the ":"
        op: Comparison = "="
        for comparison in _COMPARISONS:
            if self.text.startswith(comparison, self.at):
                op = comparison
                self.at += len(comparison)
                break
        values: list[str] = []
        positions: list[int] = []
        while True:
            positions.append(self.at)
            values.append(self.value(name))
            if self.peek() != ",":
                break
            if op != "=":
                raise InvalidQueryError(
                    f"A comparison ({op}) takes one value, not a list.", self.at
                )
            self.at += 1
        self.terms.append(
            Term(
                name=head.lower() + dot + key,
                values=tuple(values),
                op=op,
                negated=negated,
                position=start,
                value_positions=tuple(positions),
            )
        )

    def value(self, name: str) -> str:
        start = self.at
        if self.peek() == _QUOTE:
            text = self.quoted()
            if not text:
                raise InvalidQueryError(f"An empty value for {name}:.", start)
            return text
        while not self.at_separator() and self.peek() not in _VALUE_STOPS:
            self.at += 1
        if self.at == start:
            self.unsupported(self.peek())
            raise InvalidQueryError(f"An empty value for {name}:.", start)
        return self.text[start : self.at]

    def quoted(self) -> str:
        opening = self.at
        self.at += 1
        chars: list[str] = []
        while self.at < len(self.text):
            char = self.text[self.at]
            if char == _QUOTE:
                self.at += 1
                return "".join(chars)
            if char == _ESCAPE:
                self.at += 1
                if self.at >= len(self.text):
                    break
                char = self.text[self.at]
            chars.append(char)
            self.at += 1
        raise InvalidQueryError("An unterminated quote.", opening)


def parse(query: str) -> ParsedQuery:
    """The terms and words of `query` (see the module's grammar); InvalidQueryError for a
    query that does not follow it or is over the limits."""
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidQueryError(
            f"A query has at most {MAX_QUERY_LENGTH} characters.", MAX_QUERY_LENGTH
        )
    return _Parser(query).parse()


# -- checking ----------------------------------------------------------------------------


def parse_date(value: str) -> date | None:
    """The date of an ISO date value (YYYY-MM-DD); None for anything else."""
    if not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def relative_age(value: str) -> timedelta | None:
    """The age of a relative value (`<n>d`, `<n>w`, `<n>h`, n in 1..3650); None for a
    date (or anything else)."""
    match = _RELATIVE_AGE.fullmatch(value)
    if match is None:
        return None
    number = int(match.group(1))
    if number > MAX_RELATIVE_AGE:
        return None
    return number * _UNIT[match.group(2)]


def _is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def _one_of(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed)


def _value_problem(name: str, value: str) -> str | None:  # noqa: PLR0911, PLR0912
    """What is wrong with `value` for the term `name` (known), None if nothing."""
    if not value.strip():
        return f"An empty value for {name}:."
    if name == "is":
        if value not in IS_VALUES:
            return f"is: takes {_one_of(IS_VALUES)}, not {value!r}."
    elif name == "has":
        if value not in HAS_VALUES:
            return f"has: takes {_one_of(HAS_VALUES)}, not {value!r}."
    elif name == "priority":
        if value not in PRIORITY_VALUES:
            return f"priority: takes {_one_of(PRIORITY_VALUES)}, not {value!r}."
    elif name in DATE_TERMS:
        if parse_date(value) is None and relative_age(value) is None:
            return (
                f"{name}: takes a date (YYYY-MM-DD) or an age (<n>d, <n>w or <n>h, n from 1 "
                f"to {MAX_RELATIVE_AGE}), not {value!r}."
            )
    elif name == "sort":
        if value not in SORT_VALUES:
            return f"sort: takes {_one_of(SORT_VALUES)}, not {value!r}."
    elif name == "assignee":
        if value not in (ME, NONE) and not _is_email(value):
            return f"assignee: takes {ME}, {NONE} or an email address, not {value!r}."
    elif name == "reporter":
        if value != ME and not _is_email(value):
            return f"reporter: takes {ME} or an email address, not {value!r}."
    elif name == "parent":
        if not TICKET_KEY.fullmatch(value.upper()):  # keys are case-insensitive
            return f"parent: takes a ticket key like ABC-12, not {value!r}."
    elif name == "project" and not PROJECT_KEY.fullmatch(value.upper()):
        return f"project: takes a project key like ABC, not {value!r}."
    return None


def _value_at(term: Term, index: int) -> int:
    """Where the term's value `index` is (the term's position when not known)."""
    if index < len(term.value_positions):
        return term.value_positions[index]
    return term.position


def _known_names() -> str:
    return ", ".join(sorted([*TERM_NAMES, f"{FIELD_PREFIX}<key>"]))


def check(parsed: ParsedQuery, *, cross_project: bool) -> None:
    """Raise InvalidQueryError for the first term (in query order) that `parsed` may not
    have: an unknown name, `project:` outside a cross-project search, a comparison on a
    term without order, a negated `sort:`/`project:`, a bad value or a second `sort:`."""
    sorted_once = False
    for term in sorted(parsed.terms, key=lambda term: term.position):
        _check_term(term, cross_project=cross_project)
        if term.name == "sort":
            if sorted_once:
                raise InvalidQueryError("sort: may be given only once.", term.position)
            sorted_once = True


def _check_term(term: Term, *, cross_project: bool) -> None:
    name = term.name
    is_field = name.startswith(FIELD_PREFIX) and len(name) > len(FIELD_PREFIX)
    if name not in TERM_NAMES and not is_field:
        raise InvalidQueryError(
            f"Unknown term {name}:; the terms are {_known_names()}.", term.position
        )
    if name == "project" and not cross_project:
        raise InvalidQueryError(
            "project: is only allowed in a search across projects.", term.position
        )
    if term.negated and name in NOT_NEGATABLE:
        raise InvalidQueryError(f"{name}: cannot be negated.", term.position)
    if not term.values:
        raise InvalidQueryError(f"An empty value for {name}:.", term.position)
    if term.op != "=":
        if name not in ORDERED_TERMS and not is_field:
            raise InvalidQueryError(
                f"{name}: cannot be compared with {term.op}; only priority, created, "
                "updated, due and field.<key> can.",
                max(term.position, _value_at(term, 0) - len(term.op)),
            )
        if len(term.values) > 1:
            raise InvalidQueryError(
                f"A comparison ({term.op}) takes one value, not a list.", _value_at(term, 1)
            )
    if name == "sort" and len(term.values) > 1:
        raise InvalidQueryError("sort: takes one value.", _value_at(term, 1))
    for index, value in enumerate(term.values):
        problem = _value_problem(name, value)
        if problem is not None:
            raise InvalidQueryError(problem, _value_at(term, index))
