"""Swagger UI and ReDoc for the merged document, with their assets served from here.

The assets are the ones the `fastapi-offline` package ships. Its `FastAPIOffline`
factory is not used: it builds the app around FastAPI's own `/openapi.json`, which
would have to be unpicked to serve the merged document instead.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from bugtracker_gateway.auth import DOCS_ASSETS_PREFIX

TITLE = "Bugtracker API"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def docs_router(openapi_path: str) -> APIRouter:
    router = APIRouter()

    @router.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        assets = root + DOCS_ASSETS_PREFIX
        return get_swagger_ui_html(
            openapi_url=root + openapi_path,
            title=f"{TITLE} - Swagger UI",
            swagger_js_url=assets + "swagger-ui-bundle.js",
            swagger_css_url=assets + "swagger-ui.css",
            swagger_favicon_url=assets + "favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
        )

    @router.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        assets = root + DOCS_ASSETS_PREFIX
        return get_redoc_html(
            openapi_url=root + openapi_path,
            title=f"{TITLE} - ReDoc",
            redoc_js_url=assets + "redoc.standalone.js",
            redoc_favicon_url=assets + "favicon.png",
            with_google_fonts=False,
        )

    return router


def install_docs(app: FastAPI, openapi_path: str) -> None:
    app.include_router(docs_router(openapi_path))
    app.mount(
        DOCS_ASSETS_PREFIX.rstrip("/"),
        StaticFiles(packages=[("fastapi_offline", "static")]),
        name="docs-assets",
    )
