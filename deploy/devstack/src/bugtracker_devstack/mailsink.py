"""A local SMTP sink for `make up` and the test stack: it accepts every message and keeps
each as one RFC 5322 `.eml` file in a directory, delivering nothing.

    python -m bugtracker_devstack.mailsink --dir DIR --host 127.0.0.1 --port 1025

A file is named `<UTC timestamp>-<counter>.eml` (sorting the names sorts the messages by
arrival) and appears whole: it is written under a temporary name and then renamed. The
message is kept as received, after a `Return-Path` and one `Delivered-To` per envelope
recipient, as a final delivery adds them (so Bcc recipients show). Each message logs one
line. No TLS, no authentication: it listens on 127.0.0.1 for this machine only.

`MailSink` runs it as a child process of the stack (`Stack.mail_sink`)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import IO

from aiosmtpd.smtp import SMTP, Envelope, Session

from bugtracker_devstack.processes import stop_group, wait_for_port

logger = logging.getLogger("bugtracker.mailsink")

DEFAULT_PORT = 1025


class MailDirectory:
    """The aiosmtpd handler: every message becomes a file in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)

    def keep(self, content: bytes, mail_from: str, rcpt_tos: list[str]) -> Path:
        """Write one message atomically; its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{next(self._counter):06d}.eml"
        trace = [f"Return-Path: <{mail_from}>"]
        trace += [f"Delivered-To: {rcpt}" for rcpt in rcpt_tos]
        data = "".join(line + "\r\n" for line in trace).encode() + content
        temporary = self.directory / f".{name}.tmp"  # not `*.eml`: readers skip it
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        path = self.directory / name
        temporary.replace(path)  # atomic: a reader sees the whole file or none
        return path

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, _server: SMTP, _session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""  # the bytes received, dots unstuffed
        mail_from = envelope.mail_from or ""
        path = await asyncio.to_thread(self.keep, content, mail_from, list(envelope.rcpt_tos))
        headers = BytesHeaderParser(policy=default_policy).parsebytes(content)
        logger.info(
            "%s: from %s to %s, %r (%d bytes)",
            path.name,
            mail_from or "<>",
            ", ".join(envelope.rcpt_tos),
            str(headers.get("subject", "")),
            len(content),
        )
        return "250 OK: kept"


async def serve(directory: Path, host: str, port: int) -> None:
    """Accept mail on host:port until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    handler = MailDirectory(directory)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bugtracker-mailsink", enable_SMTPUTF8=True, loop=loop),
        host=host,
        port=port,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("mail sink on %s:%d, keeping messages in %s", host, port, directory)
    async with server:
        await stop.wait()
    logger.info("mail sink stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bugtracker_devstack.mailsink")
    parser.add_argument("--dir", type=Path, required=True, help="where the .eml files go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command log
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.dir, args.host, args.port))
    return 0


@dataclass
class MailSink:
    """The sink as a child process of the stack, on 127.0.0.1:`port`."""

    directory: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bugtracker_devstack.mailsink",
            "--dir",
            str(self.directory),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def start(self, output: IO[bytes] | int | None = None, *, timeout: float = 30.0) -> None:
        """Start it and wait for its port; `output`: where its lines go (default: a log
        file beside the directory)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = None
        if output is None:
            log = (self.directory.parent / "mailsink.out").open("ab")
            output = log
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=os.environ | {"PYTHONUNBUFFERED": "1"},
            )
        finally:
            if log is not None:
                log.close()  # the child has its own copy
        try:
            wait_for_port(self.port, timeout, self.process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None


if __name__ == "__main__":
    sys.exit(main())
