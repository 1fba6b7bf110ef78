"""Wires the real adapters into the use cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime, http_jwks_fetcher
from bugtracker_shared.tokens import TokenVerifier

from bugtracker_webhooks.application.delivery import DeliverySettings, Dispatcher, EventRecorder
from bugtracker_webhooks.application.use_cases import WebhookUseCases
from bugtracker_webhooks.domain.retries import parse_schedule
from bugtracker_webhooks.infrastructure.egress import (
    EgressPolicy,
    HostLimiter,
    Resolver,
    SystemResolver,
    delivery_client,
)
from bugtracker_webhooks.infrastructure.endpoints import CheckedUrls, HttpSender
from bugtracker_webhooks.infrastructure.projects_client import HttpProjectDirectory
from bugtracker_webhooks.infrastructure.secret_box import SecretBox
from bugtracker_webhooks.infrastructure.signing import new_secret
from bugtracker_webhooks.infrastructure.tables import SCHEMA, outbox
from bugtracker_webhooks.infrastructure.uow import WebhooksUnitOfWork
from bugtracker_webhooks.settings import Settings

SERVICE = "webhooks"


@dataclass
class Wired:
    runtime: ServiceRuntime
    webhooks: WebhookUseCases
    recorder: EventRecorder
    dispatcher: Dispatcher


def build(
    settings: Settings,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> Wired:
    """`http_transport` replaces the transport of the clients of auth and projects (tests
    pass an `httpx.MockTransport`); `resolver` replaces the system's DNS for deliveries."""
    auth_client = service_client(settings.jwks_url, transport=http_transport)
    projects_client = service_client(
        settings.projects_url,
        timeout_seconds=settings.http_timeout_seconds,
        transport=http_transport,
    )
    runtime = ServiceRuntime.create(
        name=SERVICE,
        settings=settings,
        schema=SCHEMA,
        outbox=outbox,
        verifier=TokenVerifier(
            http_jwks_fetcher(auth_client, settings.jwks_url),
            issuer=settings.issuer,
            audience=settings.audience,
        ),
    )
    policy = EgressPolicy.from_setting(settings.allowed_hosts)
    resolver = resolver or SystemResolver()
    receivers = delivery_client(
        policy,
        timeout_seconds=settings.delivery_timeout_seconds,
        resolver=resolver,
        max_connections=settings.max_concurrent_deliveries,
    )
    runtime.http_clients += [auth_client, projects_client]
    runtime.closers.append(receivers.aclose)
    box = SecretBox(settings.secret_key)

    def uow() -> WebhooksUnitOfWork:
        return WebhooksUnitOfWork(runtime.session_factory, runtime.after_commit, box)

    def quiet_uow() -> WebhooksUnitOfWork:
        """For the recorder and the dispatcher, which commit for every event and every
        attempt and almost never write an event (a `webhook.disabled` goes out at the
        relay's next poll): their commits do not wake the relay."""
        return WebhooksUnitOfWork(runtime.session_factory, None, box)

    projects = HttpProjectDirectory(projects_client, settings.internal_token)
    dispatcher = Dispatcher(
        uow=quiet_uow,
        sender=HttpSender(
            receivers,
            HostLimiter(settings.max_connections_per_host),
            timeout_seconds=settings.delivery_timeout_seconds,
        ),
        projects=projects,
        settings=DeliverySettings(
            schedule=parse_schedule(settings.retry_schedule),
            disable_after=timedelta(seconds=settings.disable_after_seconds),
            attempt_timeout=timedelta(seconds=settings.delivery_timeout_seconds),
            poll_seconds=settings.poll_seconds,
            max_concurrent=settings.max_concurrent_deliveries,
        ),
    )
    runtime.jobs.append(dispatcher.run)
    webhooks = WebhookUseCases(
        uow=uow,
        projects=projects,
        urls=CheckedUrls(policy, resolver),
        new_secret=new_secret,
        wake=dispatcher.wake,
    )
    recorder = EventRecorder(uow=quiet_uow, wake=dispatcher.wake)
    return Wired(runtime=runtime, webhooks=webhooks, recorder=recorder, dispatcher=dispatcher)
