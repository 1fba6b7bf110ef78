from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from bugtracker_gateway.openapi import merge_documents


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def service_document(path: str, schemas: dict[str, Any], uses: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {path: {"get": {"operationId": path, "responses": {"200": ref(uses)}}}},
        "components": {"schemas": schemas},
    }


def test_clashing_schemas_are_prefixed_and_their_refs_follow() -> None:
    projects = service_document(
        "/api/v1/projects",
        {"Page": {"properties": {"project": ref("Item")}}, "Item": {"title": "Project"}},
        uses="Page",
    )
    tickets = service_document(
        "/api/v1/tickets",
        {"Page": {"properties": {"ticket": ref("Item")}}, "Item": {"title": "Ticket"}},
        uses="Page",
    )

    merged = merge_documents({"projects": projects, "tickets": tickets}, version="1")

    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"projects_Page", "projects_Item", "tickets_Page", "tickets_Item"}
    assert schemas["tickets_Page"] == {"properties": {"ticket": ref("tickets_Item")}}
    get_tickets = merged["paths"]["/api/v1/tickets"]["get"]
    assert get_tickets["responses"]["200"] == ref("tickets_Page")


def test_equal_schemas_keep_their_name_unless_what_they_point_at_differs() -> None:
    shared = {
        "Error": {"title": "Error"},
        "Envelope": {"properties": {"item": ref("Item")}},  # same text, different Item
    }
    projects = service_document(
        "/api/v1/projects", {**shared, "Item": {"title": "Project"}}, uses="Envelope"
    )
    tickets = service_document(
        "/api/v1/tickets", {**shared, "Item": {"title": "Ticket"}}, uses="Envelope"
    )

    merged = merge_documents({"projects": projects, "tickets": tickets}, version="1")

    schemas = merged["components"]["schemas"]
    assert "Error" in schemas
    assert schemas["projects_Envelope"] == {"properties": {"item": ref("projects_Item")}}
    assert schemas["tickets_Envelope"] == {"properties": {"item": ref("tickets_Item")}}
    assert "Envelope" not in schemas


async def test_openapi_merges_every_backends_paths_and_adds_the_bearer_scheme(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Bugtracker API"
    assert set(document["paths"]) == {
        "/api/v1/auth/token",
        "/api/v1/users/me",
        "/.well-known/jwks.json",
        "/api/v1/projects",
        "/api/v1/projects/{project_ref}/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/notifications",
        "/api/v1/projects/{project_ref}/webhooks",
        "/api/v1/webhooks/{webhook_id}",
    }
    project_webhooks = document["paths"]["/api/v1/projects/{project_ref}/webhooks"]["get"]
    assert project_webhooks["operationId"] == "list_project_webhooks"
    project_tickets = document["paths"]["/api/v1/projects/{project_ref}/tickets"]["get"]
    assert project_tickets["operationId"] == "list_project_tickets"  # tickets', not projects'
    assert project_tickets["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/tickets_Page"
    }

    schemas = document["components"]["schemas"]
    assert {"projects_Page", "tickets_Page", "HTTPValidationError", "TokenResponse"} <= set(schemas)
    assert "Page" not in schemas

    schemes = document["components"]["securitySchemes"]
    password_flow = schemes["OAuth2PasswordBearer"]["flows"]["password"]
    assert password_flow["tokenUrl"] == "/api/v1/auth/token"
    assert schemes["BearerJWT"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {"OAuth2PasswordBearer": []} in document["security"]
    assert document["paths"]["/api/v1/auth/token"]["post"]["security"] == []
    assert "security" not in document["paths"]["/api/v1/users/me"]["get"]

    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


async def test_the_merged_document_is_cached_once_complete(
    gateway: httpx.AsyncClient, backends: dict[str, Any]
) -> None:
    first = await gateway.get("/openapi.json")
    second = await gateway.get("/openapi.json")

    assert first.json() == second.json()
    assert all(fake.openapi_fetches == 1 for fake in backends.values())


async def test_a_partial_merge_is_served_but_not_cached(
    open_gateway: Callable[..., Any], backends: dict[str, Any]
) -> None:
    backends["notifications"].openapi_available = False

    async with open_gateway() as gateway:
        partial = await gateway.get("/openapi.json")

        assert partial.status_code == 200
        assert "/api/v1/notifications" not in partial.json()["paths"]
        assert "/api/v1/tickets/{ticket_id}" in partial.json()["paths"]
        assert "notifications" in partial.json()["info"]["description"]

        backends["notifications"].openapi_available = True
        fetches = backends["notifications"].openapi_fetches
        complete = await gateway.get("/openapi.json")

    assert "/api/v1/notifications" in complete.json()["paths"]
    assert "description" not in complete.json()["info"]
    assert backends["notifications"].openapi_fetches == fetches + 1


async def test_the_merged_document_follows_a_backend_whose_document_changed(
    open_gateway: Callable[..., Any], backends: dict[str, Any]
) -> None:
    async with open_gateway(openapi_refresh_seconds=0) as gateway:
        before = (await gateway.get("/openapi.json")).json()
        backends["notifications"].openapi["paths"]["/api/v1/notifications/{id}/read"] = {
            "post": {"operationId": "mark_read", "responses": {"200": {"description": "OK"}}}
        }
        after = (await gateway.get("/openapi.json")).json()
        backends["notifications"].openapi_available = False  # a hiccup: keep the last one
        during_hiccup = (await gateway.get("/openapi.json")).json()

    assert "/api/v1/notifications/{id}/read" not in before["paths"]
    assert "/api/v1/notifications/{id}/read" in after["paths"]
    assert during_hiccup == after


async def test_the_document_is_built_at_start(
    open_gateway: Callable[..., Any], backends: dict[str, Any]
) -> None:
    async with open_gateway() as gateway:
        deadline = time.monotonic() + 5
        while any(fake.openapi_fetches == 0 for fake in backends.values()):
            assert time.monotonic() < deadline, "no document fetched without a request"
            await asyncio.sleep(0.01)  # a poll with a deadline, not a wait for time
        await gateway.get("/openapi.json")

    assert all(fake.openapi_fetches == 1 for fake in backends.values())
