"""The gateway's metrics: on an internal port only, per backend, by id-free routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bugtracker_gateway.main import create_app
from bugtracker_gateway.observability import RouteTemplates, proxied_route
from bugtracker_gateway.settings import Settings
from bugtracker_testkit import app_client
from prometheus_client.parser import text_string_to_metric_families

TEMPLATES = RouteTemplates(
    [
        "/api/v1/tickets/{ticket_ref}",
        "/api/v1/tickets/{ticket_ref}/comments",
        "/api/v1/projects/{project_ref}/members/{user_id}",
        "/api/v1/projects/{project_ref}/members/me",
        "/api/v1/projects/{project_ref}/tickets",
        "/api/v1/users/me",
        "/api/v1/users/{user_id}",
        "/api/v1/notifications/unread-count",
        "/.well-known/jwks.json",
    ]
)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/api/v1/tickets/DEMO-12/comments", "/api/v1/tickets/{id}/comments"),
        (
            "/api/v1/projects/DEMO/members/0b9c4a52-1f0e-4a7e-9d39-0c6b1b1d3a51",
            "/api/v1/projects/{id}/members/{id}",
        ),
        ("/api/v1/projects/DEMO/members/me", "/api/v1/projects/{id}/members/me"),
        ("/api/v1/projects/DEMO/tickets", "/api/v1/projects/{id}/tickets"),
        ("/api/v1/users/me", "/api/v1/users/me"),  # a literal wins over a parameter
        ("/api/v1/users/0b9c4a52-1f0e-4a7e-9d39-0c6b1b1d3a51", "/api/v1/users/{id}"),
        ("/api/v1/tickets/lowercase", "/api/v1/tickets/{id}"),
        ("/api/v1/notifications/unread-count", "/api/v1/notifications/unread-count"),
        ("/.well-known/jwks.json", "/.well-known/jwks.json"),
        # Paths the API does not have share one label, whatever their words.
        ("/wp-admin/setup.php", "<unmatched>"),
        ("/api/v1/tickets/DEMO-1/attachments", "<unmatched>"),
        ("/api/v1/tickets/DEMO-1/comments/extra/words", "<unmatched>"),
        ("/api/v1/notifications/read-some", "<unmatched>"),
        ("/api/v1/tickets/", "<unmatched>"),
        ("/api/v1/tickets/..", "<unmatched>"),
        ("/api/v1/tickets/" + "/x" * 20, "<unmatched>"),
    ],
)
def test_proxied_paths_become_templates_without_ids(path: str, route: str) -> None:
    assert proxied_route(path, TEMPLATES) == route


def test_before_any_document_every_proxied_path_is_unmatched() -> None:
    assert proxied_route("/api/v1/tickets/DEMO-1", RouteTemplates()) == "<unmatched>"


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_metrics_are_served_on_the_internal_port_and_not_through_the_public_one(
    settings: Settings, auth_headers: dict[str, str], backends: dict[str, Any]
) -> None:
    app = create_app(settings)
    async with app_client(app) as gateway:
        anonymous = await gateway.get("/metrics")
        public = await gateway.get("/metrics", headers=auth_headers)
        proxied = await gateway.get("/api/v1/tickets/DEMO-7", headers=auth_headers)
        # Without a token, on paths no backend has: one label for all of them.
        for word in ("alpha", "beta", "gamma"):
            refused = await gateway.get(f"/api/v1/tickets/DEMO-7/{word}")
            assert refused.status_code == 401
        port = app.state.metrics_server.port
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")

    assert anonymous.status_code == 401
    assert public.status_code == 404
    assert public.headers["content-type"] == "application/problem+json"
    assert proxied.status_code == 200
    assert backends["tickets"].proxied()  # really went to the backend
    assert scraped.status_code == 200
    samples = _samples(scraped.text)
    names = {name for name, _, _ in samples}
    assert "bugtracker_gateway_backend_request_duration_seconds_count" in names
    assert any(
        name == "bugtracker_http_request_duration_seconds_count"
        and labels["route"] == "/api/v1/tickets/{id}"
        and labels["status"] == "200"
        and value >= 1
        for name, labels, value in samples
    )
    assert "DEMO-7" not in scraped.text
    assert not [word for word in ("/alpha", "/beta", "/gamma") if word in scraped.text]
    assert any(
        name == "bugtracker_http_request_duration_seconds_count"
        and labels["route"] == "<unmatched>"
        and labels["status"] == "401"
        and value >= 3
        for name, labels, value in samples
    )


async def test_an_unreachable_backend_is_counted_as_an_error(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    from prometheus_client import REGISTRY

    def errors() -> float:
        labels = {"backend": "notifications", "reason": "unavailable"}
        value = REGISTRY.get_sample_value("bugtracker_gateway_backend_errors_total", labels)
        return value or 0.0

    before = errors()
    dead = settings.model_copy(update={"notifications_url": "http://127.0.0.1:9"})
    async with app_client(create_app(dead)) as gateway:
        response = await gateway.get("/api/v1/notifications", headers=auth_headers)
    assert response.status_code == 503
    assert errors() == before + 1
