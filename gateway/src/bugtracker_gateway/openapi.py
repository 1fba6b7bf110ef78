"""One OpenAPI document for the whole public API, merged from the backends' documents.

Each service publishes its own `/openapi.json`; the gateway keeps the paths it routes
to that service, merges the components (prefixing a name with the service only when
two services define different things under it) and adds the bearer security scheme.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import aiohttp
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bugtracker_gateway.auth import is_public
from bugtracker_gateway.backends import Backends
from bugtracker_gateway.observability import RouteTemplates
from bugtracker_gateway.routing import BACKENDS, Backend, backend_for

logger = logging.getLogger("bugtracker.gateway.openapi")

Document = dict[str, Any]
RefRenames = dict[str, str]  # "#/components/schemas/Page" -> "#/components/schemas/tickets_Page"

OPENAPI_VERSION = "3.1.0"
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 (an endpoint, not a secret)
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# Named like FastAPI's own scheme so that ours, with the gateway's token URL, wins.
SECURITY_SCHEMES: Document = {
    "OAuth2PasswordBearer": {
        "type": "oauth2",
        "description": "Log in with email and password; Swagger sends the access token.",
        "flows": {"password": {"tokenUrl": TOKEN_URL, "scopes": {}}},
    },
    "BearerJWT": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}
SECURITY: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}, {"BearerJWT": []}]


def _ref(section: str, name: str) -> str:
    return f"#/components/{section}/{name}"


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: renames.get(value, value)
            if key == "$ref" and isinstance(value, str)
            else _rewrite_refs(value, renames)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _renamable_components(documents: Mapping[Backend, Document]) -> dict[str, dict[Backend, Any]]:
    """Every component by its `$ref`, with each service's definition of it."""
    found: dict[str, dict[Backend, Any]] = {}
    for backend, document in documents.items():
        for section, entries in document.get("components", {}).items():
            if section == "securitySchemes":  # referenced by name, not by $ref
                continue
            for name, definition in entries.items():
                found.setdefault(_ref(section, name), {})[backend] = definition
    return found


def component_renames(documents: Mapping[Backend, Document]) -> dict[Backend, RefRenames]:
    """Which `$ref`s each service must rename so that no two services share a name for
    different definitions. Equal definitions that point at renamed components are not
    equal any more, so this repeats until nothing new conflicts."""
    components = _renamable_components(documents)
    shared = {ref: defs for ref, defs in components.items() if len(defs) > 1}
    conflicting: set[str] = set()
    while True:
        renames: dict[Backend, RefRenames] = {
            backend: {
                ref: f"{ref.rsplit('/', 1)[0]}/{backend}_{ref.rsplit('/', 1)[1]}"
                for ref in conflicting
                if backend in components[ref]
            }
            for backend in documents
        }
        newly = {
            ref
            for ref, defs in shared.items()
            if ref not in conflicting
            and len(
                {
                    json.dumps(_rewrite_refs(definition, renames[backend]), sort_keys=True)
                    for backend, definition in defs.items()
                }
            )
            > 1
        }
        if not newly:
            return renames
        conflicting |= newly


def _is_health(path: str) -> bool:
    return path == "/health" or path.startswith("/health/")


def merge_documents(
    documents: Mapping[Backend, Document],
    *,
    version: str,
    unavailable: Sequence[Backend] = (),
) -> Document:
    renames = component_renames(documents)
    merged: Document = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Bugtracker API", "version": version},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
        "security": SECURITY,
    }
    tags: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for backend in BACKENDS:
        document = documents.get(backend)
        if document is None:
            continue
        _merge_components(merged["components"], document, renames[backend])
        _merge_paths(merged["paths"], document, backend, renames[backend], operation_ids)
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], tag)
    merged["components"]["securitySchemes"].update(SECURITY_SCHEMES)
    if tags:
        merged["tags"] = list(tags.values())
    if unavailable:
        merged["info"]["description"] = (
            "Incomplete: these services did not answer when this document was made: "
            + ", ".join(unavailable)
            + "."
        )
    return merged


def _merge_components(components: Document, document: Document, renames: RefRenames) -> None:
    for section, entries in document.get("components", {}).items():
        merged_section = components.setdefault(section, {})
        for name, definition in entries.items():
            if section == "securitySchemes":
                merged_section.setdefault(name, definition)
                continue
            new_ref = renames.get(_ref(section, name), _ref(section, name))
            merged_section[new_ref.rsplit("/", 1)[1]] = _rewrite_refs(definition, renames)


def _merge_paths(
    paths: Document,
    document: Document,
    backend: Backend,
    renames: RefRenames,
    operation_ids: set[str],
) -> None:
    for path, item in document.get("paths", {}).items():
        if _is_health(path) or backend_for(path) != backend:
            continue  # not reachable through the gateway
        paths[path] = _rewrite_refs(item, renames)
        for method, operation in paths[path].items():
            if method in HTTP_METHODS:
                _adjust_operation(operation, backend, method, path, operation_ids)


def _adjust_operation(
    operation: Document, backend: Backend, method: str, path: str, operation_ids: set[str]
) -> None:
    if is_public(method.upper(), path):
        operation["security"] = []
    operation_id = operation.get("operationId")
    if isinstance(operation_id, str):
        if operation_id in operation_ids:
            operation_id = f"{backend}_{operation_id}"
            operation["operationId"] = operation_id
        operation_ids.add(operation_id)


class OpenApiAggregator:
    """Fetches the backends' documents at start and again when the merge is older than
    `refresh_seconds`; merges again only when a document changed (by its hash). Only a
    complete merge is kept: a partial one is served but fetched again next time.

    Each merge hands its paths to `templates`, the route labels of proxied requests."""

    def __init__(
        self,
        backends: Backends,
        timeout_seconds: float,
        version: str,
        refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        templates: RouteTemplates | None = None,
    ) -> None:
        self._backends = backends
        self._timeout = timeout_seconds
        self._version = version
        self._refresh = refresh_seconds
        self._clock = clock
        self._templates = templates
        self._cached: Document | None = None
        self._cached_hash = ""
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._merged = asyncio.Event()

    @property
    def complete(self) -> bool:
        """A merge of every backend's document is cached."""
        return self._cached is not None

    async def keep_warm(self, max_retry_seconds: float = 10.0) -> None:
        """Run by the lifespan: fetch until every backend's document is in (backends may
        still be starting), then again every `refresh_seconds`, so the route labels follow
        the backends without anyone asking for /openapi.json."""
        retry = 1.0
        while True:
            try:
                await self.document()
            except Exception:  # a bad document must not end the refreshing
                logger.exception("merging the OpenAPI documents failed")
            if self.complete:
                await asyncio.sleep(max(self._refresh, 1.0))
            else:
                await asyncio.sleep(retry)
                retry = min(retry * 2, max_retry_seconds)

    async def wait_merged(self, timeout_seconds: float) -> None:
        """Give the first merge (complete or not) a moment at start."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                await self._merged.wait()

    def _merged_paths(self, merged: Document) -> None:
        if self._templates is not None:
            self._templates.replace(merged["paths"])
        self._merged.set()

    async def document(self) -> Document:
        async with self._lock:  # concurrent requests fetch once
            if self._cached is not None and self._clock() - self._fetched_at < self._refresh:
                return self._cached
            fetched = await asyncio.gather(*(self._fetch(backend) for backend in BACKENDS))
            documents = {b: doc for b, doc in zip(BACKENDS, fetched, strict=True) if doc}
            unavailable = [backend for backend in BACKENDS if backend not in documents]
            if unavailable and self._cached is not None:
                # A backend hiccup must not shrink a document that was complete.
                self._fetched_at = self._clock()
                return self._cached
            digest = hashlib.sha256(json.dumps(documents, sort_keys=True).encode()).hexdigest()
            if self._cached is not None and digest == self._cached_hash:
                self._fetched_at = self._clock()
                return self._cached
            merged = merge_documents(documents, version=self._version, unavailable=unavailable)
            self._merged_paths(merged)
            if not unavailable:
                if self._cached is not None:
                    logger.info("a backend's OpenAPI changed: merged document rebuilt")
                self._cached, self._cached_hash = merged, digest
                self._fetched_at = self._clock()
            return merged

    async def _fetch(self, backend: Backend) -> Document | None:
        try:
            async with self._backends.session(backend).get(
                self._backends.url(backend, "/openapi.json"),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                if response.status != HTTPStatus.OK:
                    logger.warning("%s answered %s for its OpenAPI", backend, response.status)
                    return None
                document = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("%s OpenAPI unavailable: %r", backend, exc)
            return None
        return document if isinstance(document, dict) else None


def openapi_router(aggregator: OpenApiAggregator) -> APIRouter:
    router = APIRouter()

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(await aggregator.document())

    return router
