"""The `field.<key>` list filters (docs/adr/0040): asked as strings, typed against the
field's definitions in the listed projects."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from bugtracker_tickets.application.ports import FieldFilter
from bugtracker_tickets.domain.configuration import FieldDef, FieldType
from bugtracker_tickets.domain.errors import InvalidFilterError


@dataclass(frozen=True)
class FieldCondition:
    """A `field.<key>` list filter as asked: any of `equals`, within `gte`..`lte`
    (strings as given; typed against the field's definition)."""

    key: str
    equals: tuple[str, ...] = ()
    gte: str | None = None
    lte: str | None = None


_FILTER_COLUMN: dict[FieldType, Literal["value", "number", "day"]] = {
    FieldType.NUMBER: "number",
    FieldType.DATE: "day",
}


def _filter_value(definition: FieldDef, raw: str) -> Any:
    if definition.type is FieldType.NUMBER:
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(raw)
        return number
    if definition.type is FieldType.DATE:
        return date.fromisoformat(raw)
    if definition.type is FieldType.BOOL:
        if raw not in ("true", "false"):
            raise ValueError(raw)
        return raw
    if definition.type is FieldType.USER:
        return str(uuid.UUID(raw))
    return raw


def field_filter(condition: FieldCondition, definitions: Sequence[FieldDef]) -> FieldFilter:
    """One `field.<key>` condition as the search applies it (422 when it cannot be)."""
    parameter = f"field.{condition.key}"
    if not definitions:
        raise InvalidFilterError(parameter, "names no field of the listed projects")
    kinds = {d.type for d in definitions}
    if len(kinds) > 1:
        raise InvalidFilterError(parameter, "is a field of different types in these projects")
    definition = definitions[0]
    if (condition.gte is not None or condition.lte is not None) and not definition.type.is_ordered:
        raise InvalidFilterError(
            f"{parameter}.gte", "and .lte apply to number and date fields only"
        )
    try:
        equals = tuple(_filter_value(definition, raw) for raw in condition.equals)
        gte = None if condition.gte is None else _filter_value(definition, condition.gte)
        lte = None if condition.lte is None else _filter_value(definition, condition.lte)
    except ValueError:
        raise InvalidFilterError(parameter, f"takes values of a {definition.type} field") from None
    return FieldFilter(
        field_ids=tuple(d.id for d in definitions),
        column=_FILTER_COLUMN.get(definition.type, "value"),
        equals=equals,
        gte=gte,
        lte=lte,
    )
