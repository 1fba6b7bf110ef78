from __future__ import annotations

import re

import httpx
import pytest

ASSET = re.compile(r"""(?:src|href)="([^"]+)\"""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_the_merged_document_and_assets_served_here(
    gateway: httpx.AsyncClient, page: str
) -> None:
    response = await gateway.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text
    assets = ASSET.findall(response.text)
    assert assets
    assert all(asset.startswith("/docs/assets/") for asset in assets), assets
    assert "cdn" not in response.text.lower()
    for asset in assets:
        served = await gateway.get(asset)
        assert served.status_code == 200, asset
        assert served.content


async def test_swagger_loads_its_script_and_stylesheet(gateway: httpx.AsyncClient) -> None:
    html = (await gateway.get("/docs")).text

    assert 'src="/docs/assets/swagger-ui-bundle.js"' in html
    assert 'href="/docs/assets/swagger-ui.css"' in html
    script = await gateway.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert (await gateway.get("/docs/oauth2-redirect")).status_code == 200


async def test_a_missing_asset_is_a_404_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/docs/assets/nope.js")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
