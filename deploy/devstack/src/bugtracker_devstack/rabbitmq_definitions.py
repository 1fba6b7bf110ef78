"""RabbitMQ users, rights and policies for Bugtracker, as a definitions document.

One user per component, with rights limited to what it does (deploy/rabbitmq/README.md):
publishers may declare and write the events exchange and read nothing; a consumer may
declare and read its own `<component>.*` queues, bind them to the events exchange and
declare the dead-letter exchange (tickets is both: it consumes `project.*` and its own
`ticket.*` for its membership view and activity feed; so is webhooks: it consumes
the events it delivers and publishes `webhook.*`); `bugtracker_ops` may read dead
letters and republish them (the dlq tool). Topic permissions on the events exchange
narrow the routing keys:
each publisher may publish only the event types it owns (`ticket.*` only tickets,
`project.*` only projects, `user.*` and `auth.*` only auth, `webhook.*` only webhooks),
and each consumer may bind only the keys it consumes; the consumers check the rest (an
event's `type` matches its routing key and its `source` the service that owns the type).
The policy makes `bugtracker.unrouted` the alternate exchange of `bugtracker.events`, so
an event no queue is bound to is kept (7 days, 100,000 messages) instead of lost.

    BUGTRACKER_RABBITMQ_PASSWORD_TICKETS=... (one per user) \
      uv run python -m bugtracker_devstack.rabbitmq_definitions > definitions.json

prints a document for RabbitMQ's `load_definitions` (compose, Kubernetes) or
`rabbitmqctl import_definitions`. Passwords are stored as salted SHA-256 hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
from typing import Any

VHOST = "/"
EVENTS = "bugtracker.events"
UNROUTED = "bugtracker.unrouted"
DLX = "bugtracker.dlx"
PUBLISHERS = ("auth", "projects", "tickets", "webhooks")
CONSUMERS = ("notifications", "gateway", "tickets", "webhooks")
OPS_USER = "bugtracker_ops"
UNROUTED_TTL_MS = 7 * 24 * 3600 * 1000
UNROUTED_MAX_LENGTH = 100_000


def user_name(component: str) -> str:
    return f"bugtracker_{component}"


def permissions(component: str) -> dict[str, str]:
    """configure / write / read regular expressions of a component's user."""
    events, dlx, unrouted = r"bugtracker\.events", r"bugtracker\.dlx", r"bugtracker\.unrouted"
    own = component + r"\..*"
    if component in PUBLISHERS and component in CONSUMERS:
        return {
            "configure": f"^({events}|{dlx}|{own})$",
            "write": f"^({events}|{dlx}|{own})$",
            "read": f"^({events}|{dlx}|{own})$",
        }
    if component in PUBLISHERS:
        return {"configure": f"^{events}$", "write": f"^{events}$", "read": "^$"}
    if component in CONSUMERS:
        return {
            "configure": f"^({events}|{dlx}|{own})$",
            # Declaring a queue with a dead-letter exchange needs write on that exchange.
            "write": f"^({dlx}|{own})$",
            "read": f"^({events}|{dlx}|{own})$",
        }
    if component == "ops":
        return {
            "configure": "^$",
            "write": rf"^({events}|amq\.default)$",
            "read": rf"^(.*\.dlq|{unrouted})$",
        }
    raise ValueError(f"unknown component {component}")


COMPONENTS = (*PUBLISHERS, *CONSUMERS, "ops")

# Routing keys (event names) on the events exchange, per user: `write` what it may
# publish (the event types it owns, as bugtracker_shared.event_schemas.EVENT_SOURCES
# says), `read` what it may bind its queues to. A user with no entry here may use no key
# of an exchange it has no write or read right on anyway.
_TRACKER_EVENTS = "(workflow_changed|ticket_types_changed|fields_changed)"
TOPICS: dict[str, dict[str, str]] = {
    "auth": {"write": r"^(user|auth)\.[a-z0-9_]+$", "read": "^$"},
    # A project's tracker configuration events are the tickets service's (ADR 0040).
    "projects": {"write": rf"^project\.(?!{_TRACKER_EVENTS}$)[a-z0-9_]+$", "read": "^$"},
    "tickets": {
        "write": rf"^((ticket|milestone)\.[a-z0-9_]+|project\.{_TRACKER_EVENTS})$",
        "read": r"^(ticket|project)\.[a-z0-9_]+$",
    },
    "notifications": {
        "write": "^$",
        "read": r"^((ticket|project)\.[a-z0-9_]+|webhook\.disabled)$",
    },
    "gateway": {"write": "^$", "read": r"^(auth\.session_revoked|user\.deactivated)$"},
    # Its queue `webhooks.events` takes the projects' events it delivers to endpoints.
    "webhooks": {
        "write": r"^webhook\.[a-z0-9_]+$",
        "read": r"^(ticket|project|milestone|webhook)\.[a-z0-9_]+$",
    },
}


def topic_permissions(component: str) -> dict[str, str] | None:
    """The routing keys `component`'s user may publish to and bind on the events exchange."""
    return TOPICS.get(component)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(passwords: dict[str, str]) -> dict[str, Any]:
    """Users (for the components in `passwords`), rights, topology and the policy."""
    users, rights, topic_rights = [], [], []
    for component in COMPONENTS:
        if component not in passwords:
            continue
        name = OPS_USER if component == "ops" else user_name(component)
        users.append(
            {
                "name": name,
                "password_hash": password_hash(passwords[component]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
        )
        rights.append({"user": name, "vhost": VHOST} | permissions(component))
        topics = topic_permissions(component)
        if topics is not None:
            topic_rights.append({"user": name, "vhost": VHOST, "exchange": EVENTS} | topics)
    return {
        "users": users,
        "vhosts": [{"name": VHOST}],
        "permissions": rights,
        "topic_permissions": topic_rights,
        "exchanges": [
            {
                "name": EVENTS,
                "vhost": VHOST,
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            },
            {
                "name": UNROUTED,
                "vhost": VHOST,
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            },
        ],
        "queues": [
            {
                "name": UNROUTED,
                "vhost": VHOST,
                "durable": True,
                "auto_delete": False,
                "arguments": {
                    "x-queue-type": "classic",
                    "x-message-ttl": UNROUTED_TTL_MS,
                    "x-max-length": UNROUTED_MAX_LENGTH,
                    "x-overflow": "drop-head",
                },
            }
        ],
        "bindings": [
            {
                "source": UNROUTED,
                "vhost": VHOST,
                "destination": UNROUTED,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        ],
        "policies": [
            {
                "vhost": VHOST,
                "name": "bugtracker-events-alternate",
                "pattern": r"^bugtracker\.events$",
                "apply-to": "exchanges",
                "priority": 10,
                "definition": {"alternate-exchange": UNROUTED},
            }
        ],
    }


def main() -> int:
    passwords = {}
    for component in COMPONENTS:
        value = os.environ.get(f"BUGTRACKER_RABBITMQ_PASSWORD_{component.upper()}")
        if value:
            passwords[component] = value
    if not passwords:
        sys.stderr.write("set BUGTRACKER_RABBITMQ_PASSWORD_<COMPONENT> for each user\n")
        return 2
    json.dump(definitions(passwords), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
