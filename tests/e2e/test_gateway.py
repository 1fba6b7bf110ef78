"""The gateway on the real system: a backend process stopped and restarted, the answers'
headers as uvicorn sends them, and the merged OpenAPI it serves against the table of every
operation in docs/api.md."""

from __future__ import annotations

import select
import time
from typing import Any

import httpx
import pytest
from bugtracker_devstack.processes import stop_group
from bugtracker_devstack.stack import replica_name, wait_until_ready
from bugtracker_gateway.openapi import HTTP_METHODS

pytestmark = pytest.mark.e2e

UNAVAILABLE_DEADLINE_SECONDS = 1.0
RESTART_DEADLINE_SECONDS = 60.0


@pytest.fixture(scope="module")
def admin(api: httpx.Client, system: Any) -> dict[str, str]:
    login = api.post(
        "/api/v1/auth/login",
        json={"email": system.admin_email, "password": system.admin_password},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_a_stopped_backend_is_a_fast_503_and_served_again_once_restarted(
    api: httpx.Client, admin: dict[str, str], system: Any, infra: Any
) -> None:
    assert api.get("/api/v1/notifications", headers=admin).status_code == 200

    # Every replica of the service (the balancer in front of them then refuses too).
    replicas = [replica_name("notifications", r) for r in range(infra.replicas)]
    for name in replicas:
        stop_group(system.processes[name])
    try:
        started = time.monotonic()
        down = api.get("/api/v1/notifications", headers=admin)
        elapsed = time.monotonic() - started
        other = api.get("/api/v1/projects", headers=admin)
    finally:
        for replica, name in enumerate(replicas):
            log = (system.logs / f"{name}.restarted.log").open("wb")
            system.processes[name] = infra.launch("notifications", log, replica)
    wait_until_ready(infra, ("notifications",), timeout=RESTART_DEADLINE_SECONDS)

    assert down.status_code == 503, down.text
    assert elapsed < UNAVAILABLE_DEADLINE_SECONDS
    assert down.headers["content-type"] == "application/problem+json"
    assert down.headers["retry-after"] == "1"
    assert down.json()["code"] == "service_unavailable"
    assert other.status_code == 200  # the other backends are not affected
    deadline = time.monotonic() + RESTART_DEADLINE_SECONDS
    while (back := api.get("/api/v1/notifications", headers=admin)).status_code != 200:
        assert time.monotonic() < deadline, back.text
    assert back.json()["items"] is not None


def test_answers_carry_security_and_rate_limit_headers_and_no_server(
    api: httpx.Client, admin: dict[str, str]
) -> None:
    for response in (
        api.get("/api/v1/users/me", headers=admin),
        api.get("/nowhere", headers=admin),
        api.get("/health/live"),
    ):
        assert "server" not in response.headers, response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    me = api.get("/api/v1/users/me", headers=admin)
    assert me.headers["ratelimit-policy"].startswith('"default";q=')
    assert me.headers["ratelimit"].startswith('"default";r=')


def _remaining(response: httpx.Response) -> tuple[int, int]:
    """(quota, remaining) of the answer's RateLimit-Policy / RateLimit headers."""
    quota = int(response.headers["ratelimit-policy"].split(";q=")[1].split(";")[0])
    remaining = int(response.headers["ratelimit"].split(";r=")[1].split(";")[0])
    return quota, remaining


def test_a_clients_forwarded_for_does_not_open_a_fresh_rate_limit_bucket(
    api: httpx.Client,
) -> None:
    # The stack trusts no proxy in front of the gateway (docs/adr/0027): a client on
    # 127.0.0.1 naming another address is still counted as 127.0.0.1, in the bucket its
    # earlier requests (and every other test's anonymous ones) went to.
    for _ in range(3):
        assert api.get("/.well-known/jwks.json").status_code == 200
    spoofed = api.get(
        "/.well-known/jwks.json", headers={"X-Forwarded-For": f"6.6.6.{time.time_ns() % 250}"}
    )

    assert spoofed.status_code == 200
    quota, remaining = _remaining(spoofed)
    assert remaining < quota - 1, spoofed.headers["ratelimit"]  # a fresh bucket: quota - 1


def test_an_unknown_path_is_a_404_problem(api: httpx.Client, admin: dict[str, str]) -> None:
    response = api.get("/api/v1/nothing-here", headers=admin)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_the_gateways_probes(api: httpx.Client) -> None:
    assert api.get("/health/live").status_code == 200
    assert api.get("/health/ready").status_code == 200
    health = api.get("/health")
    assert health.status_code == 200, health.text
    assert set(health.json()["backends"].values()) == {"ok"}


def test_the_gateway_keeps_an_idle_connection_open_longer_than_a_client_reuses_it(
    system: Any,
) -> None:
    """uvicorn closes an idle connection exactly --timeout-keep-alive after its last answer
    was handed over, however late the client read that answer. A client reuses a
    connection as long as its own idle limit allows (httpx by default: 5 s, uvicorn's
    default too; a load balancer's: a minute), counted from when it read the answer. With
    the server's limit no longer than that, a request can go out on a connection at the
    moment the gateway closes it, and it fails with no answer at all (a ReadError or
    "Server disconnected without sending a response"; CI, under load). So the gateway
    keeps an idle connection well past what a client's pool allows."""
    urls = system.gateway_urls or [system.gateway_url]
    # No expiry on the client's side: whether the connection lives on is the server's call.
    clients = [
        httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(keepalive_expiry=None))
        for url in urls
    ]
    try:
        streams = []
        for client in clients:
            first = client.get("/health/live")
            assert first.status_code == 200
            streams.append(first.extensions["network_stream"])
        # Idle for as long as httpx's pool would reuse the connection, and a second more (the
        # client may read the answer that much later than the server sent it): a server
        # that closes the connection meanwhile makes its socket readable (the end of it).
        idle = httpx.Limits().keepalive_expiry
        assert idle is not None
        sockets = [stream.get_extra_info("socket") for stream in streams]
        closed, _, _ = select.select(sockets, [], [], idle + 1.0)
        assert not closed, "a gateway closed an idle connection that a client would still reuse"
        for client, stream in zip(clients, streams, strict=True):
            again = client.get("/health/live")
            assert again.status_code == 200
            assert again.extensions["network_stream"] is stream  # the same connection
    finally:
        for client in clients:
            client.close()


def test_the_served_openapi_has_exactly_the_operations_of_the_api_doc(
    api: httpx.Client, documented_operations: list[Any]
) -> None:
    document = api.get("/openapi.json").json()

    served = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert served == {(o.method, o.path) for o in documented_operations}
    assert document["openapi"].startswith("3.1")
    assert "OAuth2PasswordBearer" in document["components"]["securitySchemes"]
