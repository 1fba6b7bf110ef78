"""Every dependency and endpoint is a coroutine: FastAPI runs a plain function (or a class)
in its thread pool, a thread hop per request that bench/ measured as a large share of a
service's CPU. Creating the apps needs no database or broker."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import pytest
from bugtracker_devstack.stack import PROCESSES
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


def _api_routes(routes: list[object]) -> Iterator[APIRoute]:
    """The app's API routes, also those of included routers (FastAPI keeps those inside
    an included-router object of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _sync_callables(dependant: Dependant) -> Iterator[str]:
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and not (
            inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
        ):
            yield getattr(call, "__name__", repr(call))
        yield from _sync_callables(sub)


@pytest.mark.parametrize("name", PROCESSES)
def test_no_route_runs_in_the_thread_pool(
    name: str, app_factories: dict[str, Callable[[], FastAPI]]
) -> None:
    app = app_factories[name]()
    routes = list(_api_routes(list(app.router.routes)))
    assert routes
    offenders = [
        f"{route.path}: {call}"
        for route in routes
        for call in [
            *_sync_callables(route.dependant),
            *([] if inspect.iscoroutinefunction(route.endpoint) else [route.endpoint.__name__]),
        ]
    ]
    assert not offenders
