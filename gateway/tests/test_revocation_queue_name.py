"""Each gateway process gets a revocation queue of its own unless one is configured: two
replicas on one queue would each receive half of the revocations."""

from __future__ import annotations

import re

from bugtracker_gateway.revocations import own_revocation_queue

# The gateway's broker user may configure and read `gateway\..*` only (deploy/rabbitmq).
GATEWAY_QUEUES = re.compile(r"gateway\..*")


def test_every_process_names_a_queue_of_its_own_within_the_gateways_rights() -> None:
    names = {own_revocation_queue() for _ in range(100)}
    assert len(names) == 100
    assert all(GATEWAY_QUEUES.fullmatch(name) for name in names)
    assert all(name.startswith("gateway.revocations.") for name in names)
