"""The receiver in README.md ("Receive webhooks") accepts what the webhooks service sends
and refuses what it would not sign: run as the README says, against requests signed by
the service's own signing code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from bugtracker_devstack.processes import free_port
from bugtracker_webhooks.infrastructure.signing import new_secret, signature_header

README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_source() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Receive webhooks") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block in the README's webhook section"
    return match.group(1)


def test_the_readme_receiver_is_short() -> None:
    lines = [line for line in receiver_source().splitlines() if line.strip()]
    assert len(lines) <= 22


def test_the_readme_receiver_verifies_what_the_service_signs(tmp_path: Path) -> None:
    secret, port = new_secret(), free_port()
    script = tmp_path / "receiver.py"
    script.write_text(receiver_source(), encoding="utf-8")
    env = os.environ | {"WEBHOOK_SECRET": secret, "PORT": str(port)}
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    body = b'{"type":"io.bugtracker.ticket.created.v1","subject":"t-1","data":{}}'

    def post(message_id: str, signature: str, timestamp: int) -> int:
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
            "content-type": "application/cloudevents+json",
        }
        deadline = time.monotonic() + 10
        while True:
            try:
                return httpx.post(
                    f"http://127.0.0.1:{port}/hook", content=body, headers=headers
                ).status_code
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the receiver did not start"

    try:
        now = int(time.time())
        good = signature_header([secret], "msg_1", now, body)
        rotated = signature_header([new_secret(), secret], "msg_2", now, body)
        assert post("msg_1", good, now) == 204
        assert post("msg_1", good, now) == 204
        assert post("msg_2", rotated, now) == 204
        assert post("msg_3", signature_header([new_secret()], "msg_3", now, body), now) == 401
        assert post("msg_1", good.replace("v1,", "v1,A"), now) == 401
        stale = now - 3600
        assert post("msg_4", signature_header([secret], "msg_4", stale, body), stale) == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert output.splitlines() == ["io.bugtracker.ticket.created.v1 t-1"] * 2
