"""The route helpers of `bugtracker_shared.web`: versioned answers, 304, list pages, the
`/internal` router and response models built from domain objects."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from bugtracker_shared.pagination import DEFAULT_LIMIT, Listing, Page
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.web import (
    Conditional,
    Cursor,
    IfNoneMatch,
    Limit,
    Paging,
    ResponseModel,
    StrictModel,
    example,
    internal_router,
    page_of,
    unless_not_modified,
    versioned,
)
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient


@dataclass
class Thing:
    id: uuid.UUID
    name: str
    hidden: bool
    version: int


class ThingResponse(ResponseModel):
    id: uuid.UUID
    name: str
    archived: bool
    version: int


class ThingPage(Page[ThingResponse]):
    total: int | None = None


THING = Thing(id=uuid.uuid4(), name="one", hidden=True, version=3)


def show(thing: Thing) -> ThingResponse:
    return ThingResponse.from_attributes(thing, archived=thing.hidden)


def test_a_response_model_takes_the_attributes_not_given() -> None:
    body = show(THING)
    assert body == ThingResponse(id=THING.id, name="one", archived=True, version=3)


def test_a_response_model_needs_every_attribute_it_is_not_given() -> None:
    with pytest.raises(AttributeError):
        ThingResponse.from_attributes(THING)


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things/one", response_model=ThingResponse)
    async def get_thing(
        response: Response, if_none_match: IfNoneMatch = None
    ) -> ThingResponse | Response:
        return unless_not_modified(response, if_none_match, show(THING))

    @app.post("/things/one")
    async def touch_thing(response: Response) -> ThingResponse:
        return versioned(response, show(THING))

    @app.get("/things")
    async def list_things(
        request: Request, response: Response, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> ThingPage:
        listing = Listing([THING] * limit, "next" if cursor is None else None)
        return page_of(request, response, ThingPage, listing, show, total=7)

    @app.put("/things/one")
    async def change_thing(write: Conditional) -> dict[str, int | None]:
        write.answer(show(THING))
        return {"expected": write.expected_version}

    @app.get("/paged")
    async def list_paged(paging: Paging) -> ThingPage:
        listing = Listing([THING] * paging.limit, "next" if paging.cursor is None else None)
        return paging.answer(ThingPage, listing, show)

    internal = internal_router()

    @internal.get("/secret")
    async def secret() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(internal)
    app.state.internal_token = "a-long-internal-token"
    return TestClient(app)


def test_versioned_sets_the_etag(client: TestClient) -> None:
    answer = client.post("/things/one")
    assert answer.status_code == 200
    assert answer.headers["ETag"] == '"3"'
    assert answer.json()["archived"] is True


def test_a_current_copy_is_not_modified(client: TestClient) -> None:
    assert client.get("/things/one", headers={"If-None-Match": '"3"'}).status_code == 304
    stale = client.get("/things/one", headers={"If-None-Match": '"2"'})
    assert stale.status_code == 200
    assert stale.headers["ETag"] == '"3"'
    assert stale.json()["version"] == 3


def test_a_page_links_the_next_one(client: TestClient) -> None:
    first = client.get("/things", params={"limit": 2})
    assert first.json()["next_cursor"] == "next"
    assert first.json()["total"] == 7
    assert len(first.json()["items"]) == 2
    assert first.headers["Link"] == '</things?limit=2&cursor=next>; rel="next"'
    last = client.get("/things", params={"limit": 2, "cursor": "next"})
    assert "Link" not in last.headers
    assert last.json()["next_cursor"] is None
    assert client.get("/things", params={"limit": 101}).status_code == 422


def test_internal_routes_need_the_token_and_are_never_cached(client: TestClient) -> None:
    assert client.get("/internal/secret").status_code == 404
    wrong = client.get("/internal/secret", headers={"X-Internal-Token": "wrong"})
    assert wrong.status_code == 404
    answer = client.get("/internal/secret", headers={"X-Internal-Token": "a-long-internal-token"})
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert "/internal/secret" not in client.app.openapi()["paths"]  # type: ignore[attr-defined]


def test_the_paging_dependency_reads_limit_and_cursor(client: TestClient) -> None:
    first = client.get("/paged", params={"limit": 3})
    assert len(first.json()["items"]) == 3
    assert first.headers["Link"] == '</paged?limit=3&cursor=next>; rel="next"'
    assert len(client.get("/paged").json()["items"]) == DEFAULT_LIMIT
    assert "Link" not in client.get("/paged", params={"cursor": "next"}).headers
    parameters = client.app.openapi()["paths"]["/paged"]["get"]["parameters"]  # type: ignore[attr-defined]
    assert [p["name"] for p in parameters] == ["limit", "cursor"]


class ExampleRequest(StrictModel):
    model_config = example(name="one", count=2)

    name: str
    count: int


def test_example_documents_one_body_and_keeps_the_strict_config() -> None:
    schema = ExampleRequest.model_json_schema()
    assert schema["examples"] == [{"name": "one", "count": 2}]
    assert schema["additionalProperties"] is False


def test_a_conditional_write_reads_if_match_and_answers_with_the_etag(
    client: TestClient,
) -> None:
    answer = client.put("/things/one", headers={"If-Match": '"2"'})
    assert answer.json() == {"expected": 2}
    assert answer.headers["ETag"] == '"3"'
    assert client.put("/things/one").json() == {"expected": None}
    assert client.put("/things/one", headers={"If-Match": "*"}).json() == {"expected": None}
    operation = client.app.openapi()["paths"]["/things/one"]["put"]  # type: ignore[attr-defined]
    (header,) = operation["parameters"]
    assert header["name"] == "if-match"
    assert header["description"] == "ETag of the version you changed"
