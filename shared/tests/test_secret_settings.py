"""Every component refuses to start on a placeholder or short secret, naming the
variable to fix (bugtracker_shared.secret_settings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bugtracker_auth.settings import Settings as AuthSettings
from bugtracker_gateway.settings import Settings as GatewaySettings
from bugtracker_notifications.settings import Settings as NotificationsSettings
from bugtracker_projects.settings import Settings as ProjectsSettings
from bugtracker_tickets.settings import Settings as TicketsSettings
from bugtracker_webhooks.settings import Settings as WebhooksSettings
from pydantic import ValidationError

COMPONENTS: list[tuple[Callable[..., Any], str]] = [
    (AuthSettings, "BUGTRACKER_AUTH_"),
    (ProjectsSettings, "BUGTRACKER_PROJECTS_"),
    (TicketsSettings, "BUGTRACKER_TICKETS_"),
    (NotificationsSettings, "BUGTRACKER_NOTIFICATIONS_"),
    (WebhooksSettings, "BUGTRACKER_WEBHOOKS_"),
    (GatewaySettings, "BUGTRACKER_GATEWAY_"),
]
REMOTE_DB = "postgresql+asyncpg://bugtracker_x:{}@db.internal:5432/bugtracker"


@pytest.mark.parametrize(("settings", "prefix"), COMPONENTS)
def test_the_embedded_defaults_start(settings: Callable[..., Any], prefix: str) -> None:
    settings()  # make up's defaults: local servers, no internal token


@pytest.mark.parametrize(("settings", "prefix"), COMPONENTS)
@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("amqp_url", "amqp://svc:change-me-rabbitmq@mq.internal:5672/", "placeholder"),
        ("amqp_url", "amqp://svc:change-me@127.0.0.1:5672/", "placeholder"),
        ("amqp_url", "amqp://svc:short@mq.internal:5672/", "shorter than 12"),
    ],
)
def test_a_placeholder_or_short_broker_password_is_refused(
    settings: Callable[..., Any], prefix: str, field: str, value: str, complaint: str
) -> None:
    if field not in settings.model_fields:  # type: ignore[attr-defined]
        pytest.skip(f"{prefix} has no {field}")
    with pytest.raises(ValidationError) as refused:
        settings(**{field: value})
    assert f"{prefix}{field.upper()}" in str(refused.value)
    assert complaint in str(refused.value)


@pytest.mark.parametrize(
    ("settings", "prefix"), [c for c in COMPONENTS if "internal_token" in c[0].model_fields]
)
@pytest.mark.parametrize(
    ("value", "complaint"),
    [("change-me-internal-token", "placeholder"), ("too-short", "shorter than 16")],
)
def test_a_placeholder_or_short_internal_token_is_refused(
    settings: Callable[..., Any], prefix: str, value: str, complaint: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(internal_token=value)
    assert f"{prefix}INTERNAL_TOKEN" in str(refused.value)
    assert complaint in str(refused.value)


def test_database_passwords_are_checked_and_real_ones_pass() -> None:
    with pytest.raises(ValidationError, match="BUGTRACKER_TICKETS_DATABASE_URL"):
        TicketsSettings(database_url=REMOTE_DB.format("change-me-tickets-db"))
    TicketsSettings(
        database_url=REMOTE_DB.format("Zt8wq1Lr5e2Yv9kB"),
        internal_token="p2Qy7Vx0sLrN4eTa9uWm3bZk",
    )


def test_the_admin_password_from_env_example_fails_the_password_policy() -> None:
    from bugtracker_auth.domain.errors import WeakPasswordError
    from bugtracker_auth.domain.passwords import check_password

    with pytest.raises(WeakPasswordError, match="placeholder"):
        check_password(
            "change-me-admin-password", email="admin@x.example", display_name="Admin", common=()
        )
