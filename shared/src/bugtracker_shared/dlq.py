"""Inspect and replay dead-lettered (and unrouted) events.

    uv run python -m bugtracker_shared.dlq list [QUEUE ...]
    uv run python -m bugtracker_shared.dlq replay QUEUE [--limit N] [--direct]

QUEUE is a consumer queue (`notifications.events`: its dead letters are read from
`notifications.events.dlq`), a dead-letter queue itself, or `bugtracker.unrouted`.
`list` shows each message and leaves it where it is; `replay` republishes each one to the
`bugtracker.events` exchange under its original routing key (or, with `--direct`, to the
consumer queue alone) with publisher confirms, and removes it from the dead letters only
once the broker has confirmed the copy. Consumers drop duplicates by event id, so a replay
is safe to repeat. The broker URL comes from `--url` or BUGTRACKER_AMQP_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from bugtracker_shared.events import CONTENT_TYPE, EXCHANGE, UNROUTED_QUEUE

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
# The consumer queues of this repository; `list` without arguments looks at their DLQs.
KNOWN_QUEUES = (
    "notifications.events",
    "tickets.memberships",
    "tickets.activity",
    "webhooks.events",
    "gateway.revocations",
    UNROUTED_QUEUE,
)


def dead_letter_queue(queue: str) -> str:
    if queue.endswith(".dlq") or queue == UNROUTED_QUEUE:
        return queue
    return f"{queue}.dlq"


def consumer_queue(queue: str) -> str | None:
    return queue.removesuffix(".dlq") if queue.endswith(".dlq") else None


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    type: str | None
    routing_key: str
    reason: str | None
    count: int | None
    queue: str | None

    def line(self) -> str:
        return (
            f"{self.message_id or '-'}  {self.type or '-'}  key={self.routing_key}  "
            f"reason={self.reason or '-'}  count={self.count if self.count is not None else '-'}"
            f"  from={self.queue or '-'}"
        )


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    """What a dead-lettered message is and why it died (its first x-death entry)."""
    headers: dict[str, Any] = dict(message.headers or {})
    deaths = headers.get("x-death") or []
    death: dict[str, Any] = dict(deaths[0]) if deaths else {}
    keys = death.get("routing-keys") or []
    routing_key = str(keys[0]) if keys else (message.routing_key or "")
    try:
        type_: str | None = json.loads(message.body).get("type")
    except (ValueError, AttributeError):
        type_ = None
    reason = death.get("reason")
    count = death.get("count")
    queue = death.get("queue")
    return DeadLetter(
        message_id=message.message_id,
        type=type_,
        routing_key=routing_key,
        reason=str(reason) if reason is not None else None,
        count=int(count) if count is not None else None,
        queue=str(queue) if queue is not None else None,
    )


async def _drain(
    connection: AbstractRobustConnection, queue_name: str, limit: int | None
) -> tuple[aio_pika.abc.AbstractChannel, list[AbstractIncomingMessage]] | None:
    """Take up to `limit` messages without acking them (they return when the channel
    closes); None when the queue does not exist."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        queue = await channel.declare_queue(queue_name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    taken: list[AbstractIncomingMessage] = []
    while limit is None or len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return channel, taken


async def list_dead_letters(url: str, queues: Sequence[str]) -> dict[str, list[DeadLetter]]:
    found: dict[str, list[DeadLetter]] = {}
    connection = await aio_pika.connect_robust(url)
    try:
        for queue in queues:
            drained = await _drain(connection, dead_letter_queue(queue), None)
            if drained is None:
                continue
            channel, messages = drained
            found[dead_letter_queue(queue)] = [describe(m) for m in messages]
            await channel.close()  # unacked: every message goes back where it was
    finally:
        await connection.close()
    return found


async def replay(url: str, queue: str, *, limit: int | None, direct: bool) -> int:
    """Republish dead letters; each is acked (removed) only after its copy is confirmed."""
    source = dead_letter_queue(queue)
    target = consumer_queue(source) if direct else None
    if direct and target is None:
        raise SystemExit(f"--direct needs a consumer's dead-letter queue, not {source}")
    connection = await aio_pika.connect_robust(url)
    replayed = 0
    try:
        drained = await _drain(connection, source, limit)
        if drained is None:
            raise SystemExit(f"no such queue: {source}")
        channel, messages = drained
        exchange = channel.default_exchange if direct else await channel.get_exchange(EXCHANGE)
        for message in messages:
            letter = describe(message)
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    content_type=message.content_type or CONTENT_TYPE,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers={"x-replayed-from": source},
                ),
                routing_key=target or letter.routing_key,
            )
            await message.ack()
            replayed += 1
        await channel.close()
    finally:
        await connection.close()
    return replayed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bugtracker_shared.dlq", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("BUGTRACKER_AMQP_URL", DEFAULT_URL))
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show dead-lettered messages")
    listing.add_argument("queues", nargs="*", default=list(KNOWN_QUEUES))
    again = commands.add_parser("replay", help="republish dead-lettered messages")
    again.add_argument("queue")
    again.add_argument("--limit", type=int, default=None)
    again.add_argument(
        "--direct", action="store_true", help="to the consumer's queue only, not the exchange"
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.command == "list":
        found = asyncio.run(list_dead_letters(args.url, args.queues))
        if not found:
            out.write("no dead-letter queues found\n")
        for queue, letters in found.items():
            out.write(f"{queue}: {len(letters)} message(s)\n")
            for letter in letters:
                out.write(f"  {letter.line()}\n")
        return 0
    count = asyncio.run(replay(args.url, args.queue, limit=args.limit, direct=args.direct))
    out.write(f"replayed {count} message(s) from {dead_letter_queue(args.queue)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
