"""A typed `query` (docs/adr/0045) compiled to the conditions of a ticket search.

The domain parses and checks the text (bugtracker_tickets.domain.query_language); here
each term's values become what the search filters on: `@me` the caller, e-mails members'
ids, milestone names and parent keys their ids, `project:` keys the projects searched,
dates and ages bounds in UTC. Whatever names nothing the caller can see is a 422
`invalid_query` at the term, with the same words whether it does not exist or is hidden.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.field_filters import FieldCondition, field_filter
from bugtracker_tickets.application.ports import (
    Among,
    Compare,
    Condition,
    FieldFilter,
    Flag,
    OrderedColumn,
    ProjectDirectory,
    TicketColumn,
    UnitOfWork,
    WithLabels,
)
from bugtracker_tickets.domain.configuration import Category
from bugtracker_tickets.domain.errors import InvalidFilterError, InvalidQueryError
from bugtracker_tickets.domain.query_language import (
    Comparison,
    ParsedQuery,
    Term,
    Words,
    check,
    parse,
    parse_date,
    relative_age,
)
from bugtracker_tickets.domain.tickets import Priority

SORTS = {
    "created-asc": "created_at",
    "created-desc": "-created_at",
    "updated-asc": "updated_at",
    "updated-desc": "-updated_at",
    "priority-asc": "priority",
    "priority-desc": "-priority",
    "due-asc": "due_date",
    "due-desc": "-due_date",
}
# A negated comparison is the opposite comparison: -priority:>=high is priority:<high.
_OPPOSITE: dict[Comparison, Comparison] = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


@dataclass(frozen=True)
class CompiledQuery:
    project_ids: tuple[uuid.UUID, ...]
    """The projects searched: those given, narrowed by `project:`."""
    conditions: tuple[Condition, ...] = ()
    fields: tuple[FieldFilter, ...] = ()
    text: str | None = None
    """The full-text words in PostgreSQL's web search syntax (phrases quoted, `-` for not)."""
    sort: str | None = None


def web_search_text(words: Sequence[Words]) -> str | None:
    """The words for `websearch_to_tsquery`, which never fails on any text; quotes inside
    a word are dropped so that a word cannot open a phrase of its own."""
    parts = []
    for word in words:
        text = word.text.replace('"', " ").strip()
        if not text:
            continue
        text = f'"{text}"' if word.phrase else text
        parts.append(f"-{text}" if word.negated else text)
    return " ".join(parts) or None


def _date(term: Term) -> date:
    day = parse_date(term.values[0])
    if day is None:  # check() lets only dates and ages through
        raise InvalidQueryError(f"{term.name}: not a date", term.position)
    return day


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def moment_bounds(
    column: OrderedColumn, term: Term, now: datetime
) -> list[tuple[OrderedColumn, Comparison, Any]]:
    """`created:` and `updated:` as comparisons of the timestamp: a date is that UTC day,
    an age (`7d`) is counted back from now (`updated:<7d`: updated less than 7 days ago)."""
    value = term.values[0]
    age = relative_age(value)
    if age is not None:
        cutoff = now - age
        # Younger than the age is later than the cutoff.
        by_age: dict[Comparison, Comparison] = {
            "<": ">",
            "<=": ">=",
            ">": "<",
            ">=": "<=",
            "=": ">=",
        }
        return [(column, by_age[term.op], cutoff)]
    day = _date(term)
    start, end = _day_start(day), _day_start(day + timedelta(days=1))
    bounds: dict[Comparison, list[tuple[OrderedColumn, Comparison, Any]]] = {
        "=": [(column, ">=", start), (column, "<", end)],
        ">": [(column, ">=", end)],
        ">=": [(column, ">=", start)],
        "<": [(column, "<", start)],
        "<=": [(column, "<", end)],
    }
    return bounds[term.op]


def due_bounds(term: Term, today: date) -> list[tuple[OrderedColumn, Comparison, Any]]:
    """`due:` as comparisons of the due date: a date as it is, an age counted forward
    from today (`due:<7d`: due within the next week; `due:7d` from today to then)."""
    value = term.values[0]
    age = relative_age(value)
    if age is None:
        return [("due_date", term.op, _date(term))]
    until = today + timedelta(days=max(age.days, 1))
    if term.op == "=":
        return [("due_date", ">=", today), ("due_date", "<=", until)]
    return [("due_date", term.op, until)]


def _compared(bounds: list[tuple[OrderedColumn, Comparison, Any]], term: Term) -> list[Condition]:
    if not term.negated:
        return [Compare(column, op, value) for column, op, value in bounds]
    if len(bounds) > 1 or term.op == "=":
        raise InvalidQueryError(
            f"{term.name}: cannot be negated with one value; use a comparison such as "
            f"{term.name}:<{term.values[0]}",
            term.position,
        )
    column, op, value = bounds[0]
    return [Compare(column, _OPPOSITE[op], value)]


def _one_value(term: Term) -> str:
    if len(term.values) != 1:
        raise InvalidQueryError(
            f"{term.name}: takes one value; repeat the term to ask for more", term.position
        )
    return term.values[0]


@dataclass
class QueryCompiler:
    uow: Callable[[], UnitOfWork]
    projects: ProjectDirectory

    async def compile(
        self,
        principal: Principal,
        text: str,
        project_ids: tuple[uuid.UUID, ...],
        *,
        cross_project: bool,
        now: datetime,
    ) -> CompiledQuery:
        parsed = parse(text)
        check(parsed, cross_project=cross_project)
        scope = await self._scope(principal, parsed, project_ids)
        compiled = CompiledQuery(scope, text=web_search_text(parsed.words))
        for term in parsed.terms:
            compiled = await self._add(compiled, principal, term, cross_project, now)
        return compiled

    async def _scope(
        self, principal: Principal, parsed: ParsedQuery, project_ids: tuple[uuid.UUID, ...]
    ) -> tuple[uuid.UUID, ...]:
        """The projects searched: those given, and of them only those `project:` names."""
        scope = project_ids
        for term in parsed.terms:
            if term.name != "project":
                continue
            named = set()
            for key in term.values:
                access = await self.projects.access(key.upper(), principal)
                if access is None or access.project_id not in project_ids:
                    raise InvalidQueryError(
                        f"project: no project {key} that you can see", term.position
                    )
                named.add(access.project_id)
            scope = tuple(p for p in scope if p in named)
        return scope

    async def _add(
        self,
        compiled: CompiledQuery,
        principal: Principal,
        term: Term,
        cross_project: bool,
        now: datetime,
    ) -> CompiledQuery:
        if term.name == "project":
            return compiled  # the scope, see _scope
        if term.name == "sort":
            return replace(compiled, sort=SORTS[term.values[0]])
        if term.name.startswith("field."):
            fields = await self._fields(compiled.project_ids, term)
            return replace(compiled, fields=compiled.fields + fields)
        found = plain_conditions(term, now)
        if found is None:
            found = await self._looked_up(compiled.project_ids, principal, term, cross_project)
        return replace(compiled, conditions=compiled.conditions + tuple(found))

    async def _looked_up(
        self,
        project_ids: tuple[uuid.UUID, ...],
        principal: Principal,
        term: Term,
        cross_project: bool,
    ) -> list[Condition]:
        """The terms whose values name things in the database."""
        name, values, negated = term.name, term.values, term.negated
        match name:
            case "status" | "type":
                if not cross_project:
                    await self._check_known(project_ids[0], term)
                column: TicketColumn = "status" if name == "status" else "type"
                return [Among(column, values, negated)]
            case "assignee" | "reporter":
                users = await self._users(principal, project_ids, term)
                person: TicketColumn = "assignee_id" if name == "assignee" else "reporter_id"
                return [Among(person, users, negated)]
            case "milestone":
                milestones = await self._milestones(project_ids, term)
                return [Among("milestone_id", milestones, negated)]
            case "parent":
                return [Among("parent_id", await self._parents(project_ids, term), negated)]
        raise InvalidQueryError(f"unknown term {name}:", term.position)  # check() stops it

    async def _check_known(self, project_id: uuid.UUID, term: Term) -> None:
        """A project's own statuses and types only, as the `status=`/`type=` filters."""
        async with self.uow() as uow:
            config = await uow.configuration.load(project_id)
        known = config.workflow.keys() if term.name == "status" else config.types.keys()
        unknown = [value for value in term.values if value not in known]
        if unknown:
            raise InvalidQueryError(
                f"{term.name}: the project has no {term.name} {', '.join(unknown)} "
                f"(it has {', '.join(known)})",
                term.position,
            )

    async def _users(
        self, principal: Principal, project_ids: tuple[uuid.UUID, ...], term: Term
    ) -> tuple[uuid.UUID | None, ...]:
        """`@me`, `none`, and e-mails of members of the projects searched."""
        emails = {v.lower() for v in term.values if v not in ("@me", "none")}
        known: dict[str, uuid.UUID] = {}
        if emails:
            rosters = await asyncio.gather(
                *(self.projects.members(p, principal) for p in project_ids)
            )
            known = {m.email.lower(): m.user_id for roster in rosters for m in roster if m.email}
        users: list[uuid.UUID | None] = []
        for value in term.values:
            if value == "@me":
                users.append(principal.user_id)
            elif value == "none":
                users.append(None)
            elif value.lower() in known:
                users.append(known[value.lower()])
            else:
                raise InvalidQueryError(
                    f"{term.name}: no member of the projects searched has the e-mail {value}",
                    term.position,
                )
        return tuple(users)

    async def _milestones(
        self, project_ids: tuple[uuid.UUID, ...], term: Term
    ) -> tuple[uuid.UUID | None, ...]:
        names = [v for v in term.values if v.lower() != "none"]
        async with self.uow() as uow:
            found = await uow.milestones.named(project_ids, names) if names else {}
        missing = [n for n in names if n.lower() not in found]
        if missing:
            raise InvalidQueryError(
                f"milestone: the projects searched have no milestone {', '.join(missing)}",
                term.position,
            )
        ids: list[uuid.UUID | None] = [i for n in names for i in found[n.lower()]]
        if len(names) < len(term.values):
            ids.append(None)
        return tuple(ids)

    async def _parents(
        self, project_ids: tuple[uuid.UUID, ...], term: Term
    ) -> tuple[uuid.UUID, ...]:
        ids = []
        async with self.uow() as uow:
            for key in term.values:
                parent = await uow.tickets.get_by_key(key.upper())
                if parent is None or parent.deleted_at or parent.project_id not in project_ids:
                    raise InvalidQueryError(
                        f"parent: no ticket {key} in the projects searched", term.position
                    )
                ids.append(parent.id)
        return tuple(ids)

    async def _fields(
        self, project_ids: tuple[uuid.UUID, ...], term: Term
    ) -> tuple[FieldFilter, ...]:
        """`field.<key>:` as the `field.<key>` filters (any of the values, or a bound;
        `>` and `<` are a bound without the value itself)."""
        key = term.name.removeprefix("field.")
        condition = {
            "=": FieldCondition(key, equals=term.values),
            ">": FieldCondition(key, gte=term.values[0]),
            ">=": FieldCondition(key, gte=term.values[0]),
            "<": FieldCondition(key, lte=term.values[0]),
            "<=": FieldCondition(key, lte=term.values[0]),
        }[term.op]
        async with self.uow() as uow:
            definitions = await uow.configuration.field_ids(project_ids, key)
        try:
            wanted = [field_filter(condition, definitions)]
            if term.op in (">", "<"):
                wanted.append(
                    replace(
                        field_filter(FieldCondition(key, equals=term.values), definitions),
                        negated=True,
                    )
                )
        except InvalidFilterError as exc:
            raise InvalidQueryError(str(exc), term.position) from None
        if term.negated:
            if len(wanted) > 1 or term.op != "=":
                raise InvalidQueryError(
                    f"{term.name}: a comparison cannot be negated; use the opposite one",
                    term.position,
                )
            wanted = [replace(wanted[0], negated=True)]
        return tuple(wanted)


def _priority(term: Term, _now: datetime) -> list[Condition]:
    if term.op == "=":
        return [Among("priority", tuple(Priority(v).value for v in term.values), term.negated)]
    return _compared([("priority_rank", term.op, Priority(term.values[0]).rank)], term)


def _has(term: Term, _now: datetime) -> list[Condition]:
    _one_value(term)  # check() allows `attachment` only
    return [Flag("attachment", term.negated)]


# The terms that need nothing looked up, each to its conditions.
_PLAIN: dict[str, Callable[[Term, datetime], list[Condition]]] = {
    "priority": _priority,
    "label": lambda term, _now: [WithLabels(term.values, term.negated)],
    "is": lambda term, _now: [_state(_one_value(term), term.negated)],
    "has": _has,
    "created": lambda term, now: _compared(moment_bounds("created_at", term, now), term),
    "updated": lambda term, now: _compared(moment_bounds("updated_at", term, now), term),
    "due": lambda term, now: _compared(due_bounds(term, now.astimezone(UTC).date()), term),
}


def plain_conditions(term: Term, now: datetime) -> list[Condition] | None:
    """The conditions of a term that needs nothing looked up; None for the others."""
    compile_term = _PLAIN.get(term.name)
    return compile_term(term, now) if compile_term else None


def _state(value: str, negated: bool) -> Condition:
    """`is:open|closed|blocked|unassigned`: open and closed by the status's category."""
    match value:
        case "open":
            return Among("status_category", (Category.DONE.value,), not negated)
        case "closed":
            return Among("status_category", (Category.DONE.value,), negated)
        case "blocked":
            return Flag("blocked", negated)
        case _:
            return Among("assignee_id", (None,), negated)
