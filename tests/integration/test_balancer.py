"""The test stack's balancer (bugtracker_devstack.balancer) in front of two real HTTP
servers: connections alternate between the replicas, a stopped replica is skipped, an
answer longer than one read arrives whole, and with every replica down the connection is
refused until one is back."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from bugtracker_devstack.balancer import Balancer
from bugtracker_devstack.processes import free_port
from bugtracker_testkit import wait_until
from fastapi import FastAPI

pytestmark = pytest.mark.integration

BIG = "x" * 300_000  # several reads of the balancer's 64 KiB buffer


class Replica:
    def __init__(self, name: str, port: int | None = None) -> None:
        app = FastAPI()

        @app.get("/who")
        async def who() -> dict[str, str]:
            return {"replica": name}

        @app.get("/big")
        async def big() -> dict[str, str]:
            return {"body": BIG}

        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started = [Replica("a"), Replica("b")]
    for replica in started:
        replica.start()
    yield started
    for replica in started:
        replica.stop()


def _who(port: int) -> str:
    # A new connection each time: the balancer chooses per connection.
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        answer: str = client.get("/who").json()["replica"]
        return answer


def test_connections_alternate_and_a_stopped_replica_is_skipped(
    replicas: list[Replica],
) -> None:
    balancer = Balancer(free_port(), [r.port for r in replicas])
    balancer.start()
    try:
        seen = [_who(balancer.port) for _ in range(4)]
        assert sorted(seen) == ["a", "a", "b", "b"]
        replicas[1].stop()
        assert {_who(balancer.port) for _ in range(4)} == {"a"}
        with httpx.Client(base_url=f"http://127.0.0.1:{balancer.port}", timeout=5) as client:
            assert client.get("/big").json()["body"] == BIG
        replicas[0].stop()
        wait_until(lambda: _refused(balancer.port), bool, within=5)
        back = Replica("a again", port=replicas[0].port)
        back.start()
        try:
            assert wait_until(lambda: _refused(balancer.port), lambda r: not r, within=5) is False
            assert _who(balancer.port) == "a again"
        finally:
            back.stop()
    finally:
        balancer.stop()


def _refused(port: int) -> bool:
    try:
        _who(port)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:  # accepted just before the balancer stopped listening
        return False
    return False


def test_every_replica_down_refuses_the_connection() -> None:
    balancer = Balancer(free_port(), [free_port(), free_port()])
    balancer.start()
    try:
        with pytest.raises(httpx.TransportError):
            _who(balancer.port)
    finally:
        balancer.stop()
