"""The settings mixins several services share: their fields take the service's prefix and
their secrets are checked like the service's own."""

from __future__ import annotations

import pytest
from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings, PeerSettings
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict


class ExampleSettings(ServiceSettings, AuthKeysSettings, PeerSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_EXAMPLE_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_example@127.0.0.1:5432/bugtracker"


def test_the_defaults() -> None:
    settings = ExampleSettings()
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert settings.http_timeout_seconds == 5.0
    assert settings.internal_token == ""


def test_the_fields_take_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGTRACKER_EXAMPLE_JWKS_URL", "http://auth:8001/jwks.json")
    monkeypatch.setenv("BUGTRACKER_EXAMPLE_HTTP_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("BUGTRACKER_EXAMPLE_INTERNAL_TOKEN", "a-real-and-long-enough-token")
    settings = ExampleSettings()
    assert settings.jwks_url == "http://auth:8001/jwks.json"
    assert settings.http_timeout_seconds == 2.5
    assert settings.internal_token == "a-real-and-long-enough-token"


def test_a_placeholder_internal_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGTRACKER_EXAMPLE_INTERNAL_TOKEN", "change-me-internal-token")
    with pytest.raises(ValidationError, match="BUGTRACKER_EXAMPLE_INTERNAL_TOKEN"):
        ExampleSettings()
