"""The body of every service's Alembic `env.py`: async engine, version table in the
service's own schema, nothing outside it."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine


def run_migrations(metadata: MetaData, schema: str, url: str) -> None:
    def ours(name: str | None, type_: str, _parent: object) -> bool:
        if type_ == "schema":
            return name == schema
        return not (type_ == "table" and name == "alembic_version")

    options: dict[str, Any] = {
        "include_name": ours,
        "target_metadata": metadata,
        "version_table_schema": schema,
        "include_schemas": True,
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(
            url,
            poolclass=pool.NullPool,
            # Not the service's schema: with it on the search path PostgreSQL reflects
            # foreign keys without their schema, and autogenerate sees phantom changes.
            # Every table in the migrations names its schema explicitly.
            connect_args={"server_settings": {"search_path": "pg_catalog"}},
        )
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())
