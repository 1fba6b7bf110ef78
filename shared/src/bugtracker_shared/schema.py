"""Column definitions that the services' tables share, so that one kind of column is
declared the same way everywhere (each call makes a new Column: one per table)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Integer, Uuid


def uuid_key(name: str = "id") -> Column[Any]:
    """A UUID primary key (made by the service, not the database)."""
    return Column(name, Uuid, primary_key=True)


def moment(name: str, *, nullable: bool = False) -> Column[Any]:
    """A point in time, with its time zone."""
    return Column(name, DateTime(timezone=True), nullable=nullable)


def tracked(*optional_moments: str) -> list[Column[Any]]:
    """The columns of an entity edited under optimistic concurrency, in this order:
    `created_at`, `updated_at`, the nullable `optional_moments` (`deleted_at`...) and
    `version`, which every write increments."""
    return [
        moment("created_at"),
        moment("updated_at"),
        *(moment(name, nullable=True) for name in optional_moments),
        Column("version", Integer, nullable=False),
    ]
