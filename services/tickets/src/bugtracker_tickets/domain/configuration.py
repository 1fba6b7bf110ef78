"""A project's tracker configuration (docs/adr/0040): its workflow, its ticket types and
its custom fields, as data. A project that never changed them has the defaults below,
which are the workflow and types the service had in code before, so nothing changes for a
project until a maintainer changes something.

Everything here is pure: the checks a new configuration must pass, and the checks a
ticket's custom field values must pass against it. Storing it, locking it against ticket
writes and moving tickets off removed statuses, types and options are the application's.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from bugtracker_shared.permissions import Permission, ProjectRole

from bugtracker_tickets.domain.errors import (
    InUseError,
    InvalidConfigurationError,
    InvalidFieldValuesError,
)

KEY = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
MAX_STATUSES: Final = 30
MAX_TRANSITIONS: Final = MAX_STATUSES * (MAX_STATUSES - 1)
MAX_TYPES: Final = 30
MAX_FIELDS: Final = 50
MAX_OPTIONS: Final = 100
MAX_NAME: Final = 50
MAX_DESCRIPTION: Final = 500
MAX_TEXT_VALUE: Final = 1000
MAX_URL_VALUE: Final = 2000
MAX_NUMBER: Final = 1e15
# A value in the filter index (field_values.value) stays well below PostgreSQL's B-tree
# row limit (about 2,700 bytes), whatever its characters.
MAX_INDEXED_BYTES: Final = 2000


class Category(StrEnum):
    """What a status means whatever it is called: milestones count `done` tickets as
    finished, and only finished tickets unblock others and let a parent finish."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


# Who may make a transition: the lowest role, each mapped to the permission that role
# brings. A reporter may move only the tickets they reported (TICKET_EDIT_OWN).
_ROLE_PERMISSION: Final = {
    ProjectRole.DEVELOPER: Permission.TICKET_TRANSITION_ANY,
    ProjectRole.MAINTAINER: Permission.PROJECT_UPDATE,
}
MIN_ROLES: Final = (ProjectRole.REPORTER, ProjectRole.DEVELOPER, ProjectRole.MAINTAINER)


def may_make(
    min_role: ProjectRole, permissions: frozenset[Permission], *, own_ticket: bool
) -> bool:
    """Whether a caller with `permissions` may make a transition needing `min_role`."""
    if min_role is ProjectRole.REPORTER:
        return Permission.TICKET_TRANSITION_ANY in permissions or (
            own_ticket and Permission.TICKET_EDIT_OWN in permissions
        )
    needed = {Permission.TICKET_TRANSITION_ANY, _ROLE_PERMISSION[min_role]}
    return needed <= permissions


def _check_key(problems: list[str], what: str, key: str) -> None:
    if not KEY.match(key):
        problems.append(
            f"{what} {key!r} is not a key: a lowercase letter, then up to 29 of a-z, 0-9, _."
        )


def _check_name(problems: list[str], what: str, name: str) -> None:
    if not name.strip() or len(name) > MAX_NAME:
        problems.append(f"{what} needs a name of 1 to {MAX_NAME} characters.")


@dataclass(frozen=True)
class StatusDef:
    key: str
    name: str
    category: Category
    # Moving into this status needs an explicit resolution (the default `closed` does).
    requires_resolution: bool = False


@dataclass(frozen=True)
class TransitionDef:
    from_status: str
    to: str
    min_role: ProjectRole = ProjectRole.DEVELOPER


@dataclass(frozen=True)
class Workflow:
    statuses: tuple[StatusDef, ...]
    initial: str
    transitions: tuple[TransitionDef, ...]
    version: int = 1

    def status(self, key: str) -> StatusDef | None:
        return next((s for s in self.statuses if s.key == key), None)

    def category(self, key: str) -> Category:
        """The category of a status of this workflow (todo for one it does not have)."""
        found = self.status(key)
        return found.category if found else Category.TODO

    def keys(self) -> list[str]:
        return [s.key for s in self.statuses]

    def from_status(self, key: str) -> list[TransitionDef]:
        return [t for t in self.transitions if t.from_status == key]

    def transition(self, from_status: str, to: str) -> TransitionDef | None:
        return next(
            (t for t in self.transitions if t.from_status == from_status and t.to == to), None
        )

    def validate(self) -> None:
        """Raises InvalidConfigurationError listing every problem (422)."""
        problems = self._status_problems() + self._transition_problems()
        if problems:
            raise InvalidConfigurationError(problems)

    def _status_problems(self) -> list[str]:
        problems: list[str] = []
        keys = self.keys()
        if not keys or len(keys) > MAX_STATUSES:
            problems.append(f"A workflow has 1 to {MAX_STATUSES} statuses.")
        for status in self.statuses:
            _check_key(problems, "Status", status.key)
            _check_name(problems, f"Status {status.key!r}", status.name)
            if status.requires_resolution and status.category is not Category.DONE:
                problems.append(
                    f"Status {status.key!r}: only a done status can require a resolution."
                )
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            problems.append(f"Statuses are listed twice: {', '.join(duplicated)}.")
        if not any(s.category is Category.DONE for s in self.statuses):
            problems.append("At least one status must be in the done category.")
        if self.initial not in keys:
            problems.append(f"The initial status {self.initial!r} is not one of the statuses.")
        return problems

    def _transition_problems(self) -> list[str]:
        problems: list[str] = []
        keys = self.keys()
        if len(self.transitions) > MAX_TRANSITIONS:
            problems.append(f"A workflow has at most {MAX_TRANSITIONS} transitions.")
        pairs = [(t.from_status, t.to) for t in self.transitions]
        for t in self.transitions:
            problems += [
                f"A transition names {end!r}, which is not a status."
                for end in (t.from_status, t.to)
                if end not in keys
            ]
            if t.from_status == t.to:
                problems.append(f"A transition from {t.to!r} to itself is not a transition.")
            if t.min_role not in MIN_ROLES:
                problems.append("A transition's min_role is reporter, developer or maintainer.")
        if len(set(pairs)) != len(pairs):
            problems.append("A transition is listed twice.")
        if self.initial in keys:
            unreachable = sorted(set(keys) - self._reachable())
            if unreachable:
                problems.append(
                    f"Statuses cannot be reached from {self.initial!r}: {', '.join(unreachable)}."
                )
        return problems

    def _reachable(self) -> set[str]:
        seen = {self.initial}
        todo = deque([self.initial])
        while todo:
            for t in self.from_status(todo.popleft()):
                if t.to not in seen:
                    seen.add(t.to)
                    todo.append(t.to)
        return seen


def _default_workflow() -> Workflow:
    """The workflow every project had before it could change it: developers make every
    transition; a reporter may close and reopen the tickets they reported."""
    d, r = ProjectRole.DEVELOPER, ProjectRole.REPORTER
    moves = {
        "open": (("in_progress", d), ("closed", r)),
        "in_progress": (("open", r), ("in_review", d), ("done", d), ("closed", r)),
        "in_review": (("in_progress", d), ("done", d), ("closed", r)),
        "done": (("open", r), ("closed", r)),
        "closed": (("open", r),),
    }
    return Workflow(
        statuses=(
            StatusDef("open", "Open", Category.TODO),
            StatusDef("in_progress", "In progress", Category.IN_PROGRESS),
            StatusDef("in_review", "In review", Category.IN_PROGRESS),
            StatusDef("done", "Done", Category.DONE),
            StatusDef("closed", "Closed", Category.DONE, requires_resolution=True),
        ),
        initial="open",
        transitions=tuple(
            TransitionDef(source, to, role)
            for source, targets in moves.items()
            for to, role in targets
        ),
    )


DEFAULT_WORKFLOW: Final = _default_workflow()


def workflow_document(workflow: Workflow) -> dict[str, Any]:
    """The workflow as stored, shown by GET and carried by `project.workflow_changed`."""
    return {
        "statuses": [
            {
                "key": s.key,
                "name": s.name,
                "category": s.category.value,
                "requires_resolution": s.requires_resolution,
            }
            for s in workflow.statuses
        ],
        "initial": workflow.initial,
        "transitions": [
            {"from": t.from_status, "to": t.to, "min_role": t.min_role.value}
            for t in workflow.transitions
        ],
    }


@dataclass(frozen=True)
class TicketTypeDef:
    key: str
    name: str


@dataclass(frozen=True)
class TicketTypes:
    """A project's ticket types; the first is the type of a ticket created without one."""

    types: tuple[TicketTypeDef, ...]
    version: int = 1

    def keys(self) -> list[str]:
        return [t.key for t in self.types]

    @property
    def default(self) -> str:
        return self.types[0].key

    def validate(self) -> None:
        problems: list[str] = []
        keys = self.keys()
        if not keys or len(keys) > MAX_TYPES:
            problems.append(f"A project has 1 to {MAX_TYPES} ticket types.")
        for t in self.types:
            _check_key(problems, "Ticket type", t.key)
            _check_name(problems, f"Ticket type {t.key!r}", t.name)
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            problems.append(f"Ticket types are listed twice: {', '.join(duplicated)}.")
        if problems:
            raise InvalidConfigurationError(problems)


DEFAULT_TICKET_TYPES: Final = TicketTypes(
    types=(
        TicketTypeDef("bug", "Bug"),
        TicketTypeDef("feature", "Feature"),
        TicketTypeDef("task", "Task"),
        TicketTypeDef("improvement", "Improvement"),
    )
)


def workflow_of(document: Mapping[str, Any], version: int) -> Workflow:
    """The workflow `workflow_document` wrote (`requires_resolution` may be left out)."""
    return Workflow(
        statuses=tuple(
            StatusDef(
                s["key"], s["name"], Category(s["category"]), s.get("requires_resolution", False)
            )
            for s in document["statuses"]
        ),
        initial=document["initial"],
        transitions=tuple(
            TransitionDef(t["from"], t["to"], ProjectRole(t["min_role"]))
            for t in document["transitions"]
        ),
        version=version,
    )


Target = TypeVar("Target", str, str | None)


def check_migrate(
    in_use: Mapping[str, int],
    migrate: Mapping[str, Target],
    kept: Iterable[str],
    error: type[InUseError],
) -> dict[str, Target]:
    """The moves of the removed keys that tickets still use (`in_use`: key -> how many).
    Each needs a `migrate` target that is kept, or None where the caller takes None (a
    dropped value): a target not kept is InvalidConfigurationError (422), a key in use
    without a target is `error` (409 with the counts)."""
    kept_keys = set(kept)
    wrong = sorted(old for old, new in migrate.items() if new is not None and new not in kept_keys)
    if wrong:
        raise InvalidConfigurationError(
            [f"`migrate` must move each {error.item} to one that is kept: {', '.join(wrong)}."]
        )
    unmoved = {key: count for key, count in in_use.items() if key not in migrate}
    if unmoved:
        raise error(unmoved)
    return {old: migrate[old] for old in in_use}


# -- custom fields -------------------------------------------------------------------------


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOL = "bool"
    SELECT = "select"
    MULTI_SELECT = "multi_select"
    USER = "user"
    URL = "url"

    @property
    def has_options(self) -> bool:
        return self in (FieldType.SELECT, FieldType.MULTI_SELECT)

    @property
    def is_ordered(self) -> bool:
        """Lists filter it by range (`.gte`, `.lte`) as well as by value."""
        return self in (FieldType.NUMBER, FieldType.DATE)


@dataclass(frozen=True)
class FieldOption:
    value: str
    label: str


@dataclass(frozen=True)
class FieldDef:
    id: uuid.UUID
    project_id: uuid.UUID
    key: str
    name: str
    type: FieldType
    created_at: datetime
    updated_at: datetime
    options: tuple[FieldOption, ...] = ()
    required: bool = False
    # None: every ticket type; else only tickets of these types have the field.
    ticket_types: tuple[str, ...] | None = None
    description: str = ""
    version: int = 1
    deleted_at: datetime | None = None

    def applies_to(self, ticket_type: str) -> bool:
        return self.ticket_types is None or ticket_type in self.ticket_types

    def option_values(self) -> list[str]:
        return [o.value for o in self.options]

    def validate(self, ticket_types: Iterable[str]) -> None:
        problems: list[str] = []
        _check_key(problems, "Field", self.key)
        _check_name(problems, f"Field {self.key!r}", self.name)
        if len(self.description) > MAX_DESCRIPTION:
            problems.append(f"A field's description has at most {MAX_DESCRIPTION} characters.")
        values = self.option_values()
        if self.type.has_options:
            if not values or len(values) > MAX_OPTIONS:
                problems.append(f"A {self.type} field has 1 to {MAX_OPTIONS} options.")
            if len(set(values)) != len(values):
                problems.append("Options are listed twice.")
            for option in self.options:
                if option.value != option.value.strip():
                    problems.append(f"Option {option.value!r} has surrounding spaces.")
                _check_name(problems, f"Option {option.value!r}", option.label)
        elif values:
            problems.append(f"A {self.type} field has no options.")
        if self.ticket_types is not None:
            unknown = sorted(set(self.ticket_types) - set(ticket_types))
            if unknown:
                problems.append(f"Not ticket types of the project: {', '.join(unknown)}.")
            if not self.ticket_types:
                problems.append("`ticket_types` lists at least one type (or is left out for all).")
        if problems:
            raise InvalidConfigurationError(problems)

    def parse(self, value: object) -> object:
        """A value as stored (JSON) and returned, or ValueError saying what is wrong.
        `None` clears the field. A user value is checked for membership by the caller."""
        if value is None:
            return None
        if self.type.has_options:
            return _parse_option(
                self.option_values(), value, many=self.type is FieldType.MULTI_SELECT
            )
        return _PARSERS[self.type](value)

    def stored_values(self, value: object) -> list[str | float]:
        """How a value is indexed for the `field.<key>` filters: one entry per value
        (a multi-select has one per option chosen)."""
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) for v in value]
        if isinstance(value, bool):
            return ["true" if value else "false"]
        if isinstance(value, int | float):
            return [float(value)]
        return [str(value)]


def _fits(value: str, characters: int) -> bool:
    """At most `characters`, and small enough in UTF-8 for the filter index's B-tree."""
    return len(value) <= characters and len(value.encode()) <= MAX_INDEXED_BYTES


def _parse_text(value: object) -> object:
    """Text; blank text is no value (it clears the field, and is missing if required)."""
    if not isinstance(value, str) or not _fits(value, MAX_TEXT_VALUE):
        raise ValueError(
            f"must be text of at most {MAX_TEXT_VALUE} characters ({MAX_INDEXED_BYTES} bytes)"
        )
    return value if value.strip() else None


def _parse_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not math.isfinite(value) or abs(value) >= MAX_NUMBER:
        raise ValueError(f"must be a finite number below {MAX_NUMBER:g}")
    return value


def _parse_date(value: object) -> object:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value).isoformat()
    raise ValueError("must be an ISO 8601 date (YYYY-MM-DD)")


def _parse_bool(value: object) -> object:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _parse_user(value: object) -> object:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError("must be a user id") from None


def _parse_url(value: object) -> object:
    problem = f"must be an http(s) URL of at most {MAX_URL_VALUE} characters"
    if not isinstance(value, str) or not _fits(value, MAX_URL_VALUE):
        raise ValueError(problem)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(problem)
    return value


def _parse_option(allowed: list[str], value: object, *, many: bool) -> object:
    if not many:
        if value not in allowed:
            raise ValueError(f"must be one of: {', '.join(allowed)}")
        return value
    if not isinstance(value, list) or any(v not in allowed for v in value):
        raise ValueError(f"must be a list of: {', '.join(allowed)}")
    return [v for v in allowed if v in value]  # the options' order, no duplicates


_PARSERS: Final = {
    FieldType.TEXT: _parse_text,
    FieldType.NUMBER: _parse_number,
    FieldType.DATE: _parse_date,
    FieldType.BOOL: _parse_bool,
    FieldType.USER: _parse_user,
    FieldType.URL: _parse_url,
}


@dataclass(frozen=True)
class FieldChange:
    """A ticket's custom field values after a create or PATCH, and which changed."""

    values: dict[str, Any]
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def apply_field_values(
    definitions: Sequence[FieldDef],
    ticket_type: str,
    current: Mapping[str, Any],
    given: Mapping[str, Any] | None,
    *,
    creating: bool,
) -> FieldChange:
    """Check `given` (the request's `fields`, None when it gives none) against the
    project's live field definitions for a ticket of `ticket_type`, and merge it into
    `current`. Raises InvalidFieldValuesError naming each bad key (422 with
    `loc: ["body", "fields", key]`): unknown keys, fields that do not apply to the type,
    wrong values, a required field missing on create or cleared. Values of fields that do
    not apply to the ticket's (new) type are dropped."""
    by_key = {d.key: d for d in definitions}
    problems: dict[str, str] = {}
    values = {k: v for k, v in current.items() if k in by_key}
    for key, raw in (given or {}).items():
        definition = by_key.get(key)
        if definition is None:
            problems[key] = "is not a field of this project"
            continue
        if not definition.applies_to(ticket_type):
            problems[key] = f"does not apply to tickets of type {ticket_type}"
            continue
        try:
            parsed = definition.parse(raw)
        except ValueError as exc:
            problems[key] = str(exc)
            continue
        if parsed is None or parsed == []:
            values.pop(key, None)
        else:
            values[key] = parsed
    values = {k: v for k, v in values.items() if by_key[k].applies_to(ticket_type)}
    for definition in definitions:
        if not (definition.required and definition.applies_to(ticket_type)):
            continue
        missing = definition.key not in values
        cleared = given is not None and definition.key in given and missing
        if definition.key not in problems and (cleared or (creating and missing)):
            problems[definition.key] = "is required"
    if problems:
        raise InvalidFieldValuesError(problems)
    changed = {
        key: (current.get(key), values.get(key))
        for key in sorted(set(current) | set(values), key=_order(definitions))
        if current.get(key) != values.get(key)
    }
    return FieldChange(values=values, changed=changed)


def _order(definitions: Sequence[FieldDef]) -> Any:
    positions = {d.key: i for i, d in enumerate(definitions)}
    return lambda key: (positions.get(key, len(positions)), key)
