"""Wires the real adapters into the use cases."""

from __future__ import annotations

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime, http_jwks_fetcher
from bugtracker_shared.tokens import JwksFetcher, TokenVerifier

from bugtracker_projects.application.use_cases import ProjectUseCases
from bugtracker_projects.infrastructure.access_reader import DriverAccessReader
from bugtracker_projects.infrastructure.auth_client import HttpUserDirectory
from bugtracker_projects.infrastructure.tables import SCHEMA, outbox
from bugtracker_projects.infrastructure.uow import ProjectsUnitOfWork
from bugtracker_projects.settings import Settings


def build(
    settings: Settings,
    *,
    auth_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> tuple[ServiceRuntime, ProjectUseCases]:
    auth = service_client(
        settings.auth_url, timeout_seconds=settings.http_timeout_seconds, transport=auth_transport
    )
    verifier = TokenVerifier(
        jwks_fetcher or http_jwks_fetcher(auth, settings.jwks_url),
        issuer=settings.issuer,
        audience=settings.audience,
    )
    runtime = ServiceRuntime.create(
        name="projects",
        settings=settings,
        schema=SCHEMA,
        outbox=outbox,
        verifier=verifier,
    )
    runtime.http_clients.append(auth)
    use_cases = ProjectUseCases(
        uow=lambda: ProjectsUnitOfWork(runtime.session_factory, runtime.after_commit),
        users=HttpUserDirectory(auth),
        reads=DriverAccessReader(runtime.engine),
    )
    return runtime, use_cases
