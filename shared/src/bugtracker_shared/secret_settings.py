"""Refuse to start on a placeholder or too-short secret (docs/security.md).

`.env.example` ships `change-me-…` values for every secret; a deployment that copies it
without replacing one must not start with a secret anyone can read in this repository.
Each component's Settings calls `check_secrets` after loading, and the error names the
environment variable to fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Self
from urllib.parse import unquote, urlsplit

from pydantic import model_validator
from pydantic_settings import BaseSettings

PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|placeholder", re.IGNORECASE)
MIN_TOKEN_LENGTH = 16  # shared tokens such as the internal token (make up uses 43)
MIN_URL_PASSWORD_LENGTH = 12  # database and broker passwords, except on loopback


class InsecureSecretError(ValueError):
    pass


def _loopback(host: str | None) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(variable: str, value: str) -> None:
    """An optional shared token: empty (off) or a real one."""
    if not value:
        return
    if PLACEHOLDER.search(value):
        raise InsecureSecretError(f"{variable} still holds a placeholder value; set a real secret")
    if len(value) < MIN_TOKEN_LENGTH:
        raise InsecureSecretError(
            f"{variable} is shorter than {MIN_TOKEN_LENGTH} characters; use e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )


def check_url(variable: str, url: str) -> None:
    """The password in a connection URL: never a placeholder; long enough unless the
    server is on this machine (the embedded defaults of local development)."""
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else ""
    if PLACEHOLDER.search(password):
        raise InsecureSecretError(f"{variable} holds a placeholder password; set a real one")
    if password and len(password) < MIN_URL_PASSWORD_LENGTH and not _loopback(parts.hostname):
        raise InsecureSecretError(
            f"{variable} has a password shorter than {MIN_URL_PASSWORD_LENGTH} characters"
        )


def check_secrets(prefix: str, values: Mapping[str, object]) -> None:
    """Check a component's settings: `*_url` fields with a password, `*token*` fields."""
    for name, value in values.items():
        if not isinstance(value, str):
            continue
        variable = f"{prefix}{name.upper()}"
        if name.endswith("_url"):
            check_url(variable, value)
        elif "token" in name and not name.endswith(("_seconds", "_ttl")):
            check_token(variable, value)


class CheckedSettings(BaseSettings):
    """A component's settings, refused at load when a secret is a placeholder or short."""

    @model_validator(mode="after")
    def _secrets_are_real(self) -> Self:
        check_secrets(str(self.model_config.get("env_prefix", "")), self.model_dump())
        return self


class ServiceSettings(CheckedSettings):
    """What each of the five services reads alike (the broker, the access tokens it
    accepts, its pool, its log level). A subclass sets `env_prefix` and the default of
    `database_url` (its own role)."""

    database_url: str
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    issuer: str = "bugtracker-auth"
    audience: str = "bugtracker"
    db_pool_size: int = 20
    log_level: str = "INFO"
