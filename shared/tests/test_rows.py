"""The dataclass <-> row mapping (bugtracker_shared.rows): no database needed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import pytest
from bugtracker_shared.rows import Columns, MappingError
from bugtracker_shared.schema import uuid_key
from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY

metadata = MetaData()

things = Table(
    "things",
    metadata,
    uuid_key(),
    Column("name", String(50), nullable=False),
    Column("colour", String(16), nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("note", Text),
    Column("version", Integer, nullable=False),
    Column("name_length", Integer, Computed("length(name)"), nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("body_text", Text, nullable=False),
)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Thing:
    id: uuid.UUID
    name: str
    colour: Colour
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class Entry:
    body: str
    id: int | None = None


THINGS = Columns(Thing, things, load={"colour": Colour, "tags": list}, unmapped=("name_length",))


def _thing() -> Thing:
    return Thing(id=uuid.uuid4(), name="lamp", colour=Colour.RED, tags=["a"], note=None)


def test_values_are_the_columns_of_the_fields_with_enums_as_their_values() -> None:
    thing = _thing()
    values = THINGS.values(thing)
    assert values == {
        "id": thing.id,
        "name": "lamp",
        "colour": "red",
        "tags": ["a"],
        "note": None,
        "version": 1,
    }
    assert type(values["colour"]) is str
    assert list(values) == ["id", "name", "colour", "tags", "note", "version"]  # table order


def test_from_row_converts_and_ignores_other_columns() -> None:
    thing = _thing()
    row = {**THINGS.values(thing), "tags": ("a",), "name_length": 4, "extra": "joined"}
    loaded = THINGS.from_row(row)
    assert loaded == thing
    assert loaded.colour is Colour.RED
    assert loaded.tags == ["a"]


def test_columns_are_the_mapped_ones_in_table_order() -> None:
    assert [c.name for c in THINGS.columns] == ["id", "name", "colour", "tags", "note", "version"]


def test_only_and_without_narrow_the_written_columns() -> None:
    thing = _thing()
    assert THINGS.only("name").values(thing) == {"name": "lamp"}
    assert THINGS.only("colour", "version").values(thing) == {"colour": "red", "version": 1}
    assert THINGS.without("id", "name").values(thing) == {
        "colour": "red",
        "tags": ["a"],
        "note": None,
        "version": 1,
    }
    # The narrowed mapping still reads whole rows; the original is unchanged.
    assert THINGS.only("name").from_row(THINGS.values(thing)) == thing
    assert "id" in THINGS.values(thing)


def test_narrowing_by_an_unknown_field_fails() -> None:
    with pytest.raises(MappingError, match="no fields"):
        THINGS.only("nmae")
    with pytest.raises(MappingError, match="no fields"):
        THINGS.without("nmae")


def test_rename_and_identity_columns() -> None:
    entries_ = Columns(Entry, entries, rename={"body": "body_text"})
    entry = Entry(body="hello")
    # The identity column is read, never written.
    assert entries_.values(entry) == {"body_text": "hello"}
    assert entries_.from_row({"id": 7, "body_text": "hello"}) == Entry(body="hello", id=7)
    with pytest.raises(MappingError, match="written by the database"):
        entries_.only("id")


def test_a_field_without_a_column_fails() -> None:
    with pytest.raises(MappingError, match=r"no column \['body'\]"):
        Columns(Entry, entries)
    with pytest.raises(MappingError, match="two fields in one column"):
        Columns(Entry, entries, rename={"body": "id"})


def test_a_required_column_without_a_field_fails() -> None:
    @dataclass
    class Partial:
        id: uuid.UUID
        colour: Colour
        tags: list[str]
        version: int

    with pytest.raises(MappingError, match="column name has no field"):
        Columns(Partial, things, unmapped=("name_length",))
    with pytest.raises(MappingError, match="NOT NULL without a default"):
        Columns(Partial, things, unmapped=("name_length", "name", "note"))
    # Unless the repository writes it itself.
    partial = Columns(Partial, things, unmapped=("name_length", "note"), supplied=("name",))
    values = partial.values(Partial(uuid.uuid4(), Colour.BLUE, [], 1))
    assert set(values) == {"id", "colour", "tags", "version"}
    with pytest.raises(MappingError, match="both unmapped and supplied"):
        Columns(Partial, things, unmapped=("name_length", "note", "name"), supplied=("name",))


def test_an_unlisted_optional_column_fails_too() -> None:
    @dataclass
    class NoNote:
        id: uuid.UUID
        name: str
        colour: Colour
        tags: list[str]
        version: int

    with pytest.raises(MappingError, match="column note has no field"):
        Columns(NoNote, things, unmapped=("name_length",))
    assert Columns(NoNote, things, unmapped=("name_length", "note")).values(
        NoNote(uuid.uuid4(), "n", Colour.BLUE, [], 1)
    )


def test_options_naming_nothing_fail() -> None:
    with pytest.raises(MappingError, match="load names no field"):
        Columns(Thing, things, load={"colour_": Colour}, unmapped=("name_length",))
    with pytest.raises(MappingError, match="unmapped names no column"):
        Columns(Thing, things, unmapped=("name_length", "nope"))
    with pytest.raises(MappingError, match="unmapped and has a field"):
        Columns(Thing, things, unmapped=("name_length", "note"))


def test_init_false_fields_and_non_dataclasses_fail() -> None:
    @dataclass
    class Derived:
        id: uuid.UUID
        body_text: str
        seen: datetime = field(init=False, default=datetime(2020, 1, 1, tzinfo=UTC))

    with pytest.raises(MappingError, match="init=False"):
        Columns(Derived, entries)

    class Plain:
        id: int

    with pytest.raises(MappingError, match="not a dataclass"):
        Columns(Plain, entries)  # type: ignore[type-var]
