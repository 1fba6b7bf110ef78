"""The ceiling of a Python service on this machine: bare FastAPI + asyncpg, one statement
per request, no gateway, no token check, no ORM, no outbox.

    BENCH_BASELINE_DSN=postgresql://... python -m uvicorn baseline_app:create_app \
        --factory --app-dir bench

The suite (bench/suite/baseline.py) creates its database and role, fills it and starts it
with one uvicorn worker on a free port, like each service of `make up`:

- POST /items          one INSERT ... RETURNING (creating a ticket, without its extras)
- GET /items/{key}     one SELECT by a unique index (getting a ticket by key)
- GET /items?limit=25  one SELECT of the 25 most recently updated, by an index (a list)

The rows and responses are shaped like tickets, validated and serialised with pydantic.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field

PROJECT_ID = uuid.UUID("00000000-0000-4000-8000-00000000b0b0")
INSERT = """
INSERT INTO items (id, key, project_id, title, description, status, priority, labels,
                   created_at, updated_at)
VALUES (gen_random_uuid(), 'B-' || nextval('item_numbers'), $1, $2, $3, 'open', $4, $5,
        now(), now())
RETURNING id, key, project_id, title, description, status, priority, labels, created_at,
          updated_at
"""
SELECT_ONE = """
SELECT id, key, project_id, title, description, status, priority, labels, created_at, updated_at
FROM items WHERE key = $1
"""
SELECT_PAGE = """
SELECT id, key, project_id, title, description, status, priority, labels, created_at, updated_at
FROM items WHERE project_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2
"""


class NewItem(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=50_000)] = ""
    priority: str = "medium"
    labels: list[str] = Field(default_factory=list)


class Item(BaseModel):
    id: uuid.UUID
    key: str
    project_id: uuid.UUID
    title: str
    description: str
    status: str
    priority: str
    labels: list[str]
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[Item]


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def create_app() -> FastAPI:
    dsn = os.environ["BENCH_BASELINE_DSN"]
    size = int(os.environ.get("BENCH_BASELINE_POOL", "10"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/items", status_code=201)
    async def create_item(body: NewItem, request: Request) -> Item:
        row = await _pool(request).fetchrow(
            INSERT, PROJECT_ID, body.title, body.description, body.priority, body.labels
        )
        if row is None:  # INSERT ... RETURNING always returns the row
            raise HTTPException(status_code=500)
        return Item(**dict(row))

    @app.get("/items/{key}")
    async def get_item(key: str, request: Request) -> Item:
        row = await _pool(request).fetchrow(SELECT_ONE, key)
        if row is None:
            raise HTTPException(status_code=404)
        return Item(**dict(row))

    @app.get("/items")
    async def list_items(
        request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> ItemPage:
        rows = await _pool(request).fetch(SELECT_PAGE, PROJECT_ID, limit)
        return ItemPage(items=[Item(**dict(row)) for row in rows])

    return app
