"""Domain dataclasses to table rows and back, checked once against the table.

A repository declares, next to its table, how an entity is stored::

    TICKETS = Columns(Ticket, tickets, load={"type": TicketType, "labels": list},
                      unmapped=("search",))

and then writes `insert(tickets).values(TICKETS.values(ticket))` and reads
`TICKETS.from_row(row)`. Every field is stored in the column of its name (or the one
`rename` gives), so a field without a column, a column the entity cannot fill, or a typo
in the options raises `MappingError` when the module is imported, not on some request.
What goes where is decided once, here: per call, the mapping costs what the hand-written
`Entity(id=row["id"], ...)` and `{"id": entity.id, ...}` cost.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Collection, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Column, Table

from bugtracker_shared.db import Row

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

E = TypeVar("E", bound="DataclassInstance")

Convert = Callable[[Any], Any]


class MappingError(TypeError):
    """A dataclass and a table that do not fit together (a programming error)."""


def _omittable(column: Column[Any]) -> bool:
    """Whether an INSERT may leave `column` out: the database has a value for it."""
    return (
        column.nullable is True
        or column.default is not None
        or column.server_default is not None
        or column.computed is not None
        or column.identity is not None
    )


def _generated(column: Column[Any]) -> bool:
    """Whether the database alone writes `column` (a computed or identity column)."""
    return column.computed is not None or column.identity is not None


def _check_columns(
    where: str, table: Table, mapped: set[str], unmapped: Collection[str], supplied: Collection[str]
) -> None:
    """That every field has a column and every other column is listed in `supplied`, or
    in `unmapped` and one the database can fill."""
    overlap = sorted(set(unmapped) & set(supplied))
    if overlap:
        raise MappingError(f"{where}: {overlap} are both unmapped and supplied")
    unmapped = {*unmapped, *supplied}
    names = {c.name for c in table.c}
    missing = sorted(mapped - names)
    if missing:
        raise MappingError(f"{where}: no column {missing} for the fields of that name")
    unknown = sorted(set(unmapped) - names)
    if unknown:
        raise MappingError(f"{where}: unmapped names no column {unknown}")
    for column in table.c:
        if column.name in mapped:
            if column.name in unmapped:
                raise MappingError(f"{where}: {column.name} is unmapped and has a field")
        elif column.name not in unmapped:
            raise MappingError(
                f"{where}: column {column.name} has no field (list it in `unmapped` if the "
                "database fills it)"
            )
        elif column.name not in supplied and not _omittable(column):
            raise MappingError(
                f"{where}: column {column.name} has no field, and is NOT NULL without a default"
            )


class Columns(Generic[E]):
    """How instances of the dataclass `entity` are stored as rows of `table`.

    - `rename`: field name -> column name, for a field stored under another name.
    - `load`: field name -> function making the field's value from the column's (an
      Enum class, `list`...). An Enum class also stores the member's `.value`.
    - `dump`: field name -> function making the column's value from the field's.
    - `unmapped`: the columns no field fills; each must be one the database can fill
      (nullable, with a default, computed or an identity).
    - `supplied`: the columns no field fills that the repository writes itself, with
      the entity's values (`created_at=now`...).

    Computed and identity columns are read but never written.
    """

    def __init__(
        self,
        entity: type[E],
        table: Table,
        *,
        rename: Mapping[str, str] | None = None,
        load: Mapping[str, Convert] | None = None,
        dump: Mapping[str, Convert] | None = None,
        unmapped: Collection[str] = (),
        supplied: Collection[str] = (),
    ) -> None:
        rename, load, dump = dict(rename or {}), dict(load or {}), dict(dump or {})
        if not dataclasses.is_dataclass(entity):
            raise MappingError(f"{entity.__name__} is not a dataclass")
        where = f"{entity.__name__} in table {table.name}"
        fields = [f.name for f in dataclasses.fields(entity)]
        uninitialised = [f.name for f in dataclasses.fields(entity) if not f.init]
        if uninitialised:
            raise MappingError(f"{where}: fields {uninitialised} cannot be loaded (init=False)")
        for option, names in (("rename", rename), ("load", load), ("dump", dump)):
            unknown = sorted(set(names) - set(fields))
            if unknown:
                raise MappingError(f"{where}: {option} names no field {unknown}")
        column_of = {name: rename.get(name, name) for name in fields}
        if len(set(column_of.values())) < len(column_of):
            raise MappingError(f"{where}: two fields in one column ({column_of})")
        _check_columns(where, table, set(column_of.values()), unmapped, supplied)
        mapped = set(column_of.values())

        self.entity = entity
        self.table = table
        # The mapped columns, in the table's order: what a SELECT of the entity lists.
        self.columns: tuple[Column[Any], ...] = tuple(c for c in table.c if c.name in mapped)
        field_of = {column: name for name, column in column_of.items()}
        self._column_of = column_of
        self._fields = [field_of[c.name] for c in self.columns]
        self._load, self._dump = load, dump
        self._enums = {
            name for name, kind in load.items() if isinstance(kind, type) and issubclass(kind, Enum)
        }
        # Fields the database alone writes (computed or identity columns).
        self._generated = frozenset(field_of[c.name] for c in self.columns if _generated(c))
        self.from_row: Callable[[Row], E] = self._compile_from_row()
        written = [name for name in self._fields if name not in self._generated]
        self.values: Callable[[E], dict[str, Any]] = self._compile_values(written)
        # The columns `values` gives, in its order (an UPDATE's SET list).
        self.written: tuple[str, ...] = tuple(column_of[name] for name in written)

    # `from_row` and `values` are compiled once, as dataclasses compiles `__init__`: the
    # code a hand-written mapper would be (`Entity(id=row["id"], ...)`), no loop per call.

    def _compile_from_row(self) -> Callable[[Row], E]:
        """`from_row(row)`: the entity of a row (a SQLAlchemy RowMapping or an asyncpg
        Record) that has at least the mapped columns."""
        arguments = []
        for name in self._fields:
            value = f"row[{self._column_of[name]!r}]"
            if name in self._load:
                value = f"_load_{name}({value})"
            arguments.append(f"{name}={value}")
        namespace = {f"_load_{name}": convert for name, convert in self._load.items()}
        source = f"return _entity({', '.join(arguments)})"
        return _compile("row", source, {**namespace, "_entity": self.entity})

    def _compile_values(self, fields: list[str]) -> Callable[[E], dict[str, Any]]:
        """`values(entity)`: the column values of `fields` by column name, for an INSERT
        or an UPDATE."""
        items = []
        for name in fields:
            value = f"entity.{name}"
            if name in self._dump:
                value = f"_dump_{name}({value})"
            elif name in self._enums:
                value += ".value"
            items.append(f"{self._column_of[name]!r}: {value}")
        namespace = {f"_dump_{name}": convert for name, convert in self._dump.items()}
        return _compile("entity", f"return {{{', '.join(items)}}}", namespace)

    def only(self, *fields: str) -> Columns[E]:
        """The same mapping, writing only `fields` (an UPDATE of what may change)."""
        self._check(fields)
        generated = sorted(set(fields) & self._generated)
        if generated:
            raise MappingError(f"{self.entity.__name__}: {generated} are written by the database")
        narrowed = copy.copy(self)
        narrowed.values = self._compile_values(list(fields))
        narrowed.written = tuple(self._column_of[name] for name in fields)
        return narrowed

    def without(self, *fields: str) -> Columns[E]:
        """The same mapping, writing every column but those of `fields` (the fields an
        UPDATE must not change)."""
        self._check(fields)
        return self.only(
            *(name for name in self._fields if name not in fields and name not in self._generated)
        )

    def _check(self, fields: Collection[str]) -> None:
        unknown = sorted(set(fields) - set(self._column_of))
        if unknown:
            raise MappingError(f"{self.entity.__name__} has no fields {unknown}")


def _compile(argument: str, body: str, namespace: dict[str, Any]) -> Callable[[Any], Any]:
    """A one-argument function of one statement. The source is made of field names
    (identifiers: dataclasses checks them) and quoted column names only."""
    source = f"def function({argument}):\n    {body}\n"
    exec(source, namespace)  # noqa: S102 (see above)
    function: Callable[[Any], Any] = namespace["function"]
    return function
