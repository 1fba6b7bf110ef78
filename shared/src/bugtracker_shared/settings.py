"""Settings that several services read alike, as mixins for their `Settings` (the
subclass's `env_prefix` names the variables: `BUGTRACKER_<NAME>_JWKS_URL`, ...)."""

from __future__ import annotations

from pydantic_settings import BaseSettings


class AuthKeysSettings(BaseSettings):
    """A service that verifies access tokens with auth's published keys."""

    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"


class PeerSettings(BaseSettings):
    """A service that calls other services over HTTP."""

    http_timeout_seconds: float = 5.0
    # The deployment's shared secret that service callers of /internal/* present in
    # X-Internal-Token (bugtracker_shared.internal). Empty: /internal answers 404 and
    # this service calls no /internal endpoint of another.
    internal_token: str = ""
