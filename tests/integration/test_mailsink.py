"""The local SMTP sink of `make up` and the test stack (bugtracker_devstack.mailsink), as a
child process: every message becomes one `.eml` file, named in arrival order, read back by
bugtracker_testkit.mail; stopping it frees its port. And the notifications service's mail
settings the stack hands it."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from bugtracker_devstack.mailsink import MailSink
from bugtracker_devstack.postgres import Postgres
from bugtracker_devstack.processes import free_port, port_free
from bugtracker_devstack.rabbitmq import RabbitMQ
from bugtracker_devstack.stack import DEFAULT_MAIL_FROM, Ports, Stack
from bugtracker_testkit import wait_until
from bugtracker_testkit.mail import read_mails

pytestmark = pytest.mark.integration


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    sink = MailSink(directory=tmp_path / "mail", port=free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def _mail(subject: str, to: str = "ann@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = DEFAULT_MAIL_FROM
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"{subject}\n.a line that starts with a dot\nÜmlaut\n")
    return message


def test_each_message_is_one_eml_file_in_arrival_order(sink: MailSink) -> None:
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        for number in range(1, 4):
            client.send_message(_mail(f"[DEMO-{number}] Crash on säve"))
        client.send_message(_mail("Bcc"), to_addrs=["ann@example.com", "hidden@example.com"])

    mails = wait_until(lambda: read_mails(sink.directory), lambda m: len(m) == 4)

    assert [m["subject"] for m in mails] == [
        "[DEMO-1] Crash on säve",
        "[DEMO-2] Crash on säve",
        "[DEMO-3] Crash on säve",
        "Bcc",
    ]
    first = mails[0]
    assert first["from"] == DEFAULT_MAIL_FROM
    assert first["return-path"] == "<bugtracker@localhost>"
    body = first.get_body()
    assert body is not None
    assert body.get_content() == "[DEMO-1] Crash on säve\n.a line that starts with a dot\nÜmlaut\n"
    assert mails[3].get_all("delivered-to") == ["ann@example.com", "hidden@example.com"]
    names = sorted(p.name for p in sink.directory.iterdir())
    assert len(names) == 4
    assert all(name.endswith(".eml") and name.count("-") == 1 for name in names)
    assert [name.rsplit("-", 1)[1] for name in names] == [f"{n:06d}.eml" for n in range(1, 5)]


def test_stopping_the_sink_frees_its_port(sink: MailSink) -> None:
    assert not port_free(sink.port)
    sink.stop()
    assert port_free(sink.port)
    assert read_mails(sink.directory) == []
    assert read_mails(sink.directory / "absent") == []


def test_the_notifications_service_gets_its_mail_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BUGTRACKER_MAIL_FROM", "BUGTRACKER_PUBLIC_URL", "BUGTRACKER_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    stack = Stack(
        postgres=Postgres(base=tmp_path / "pg", port=1),
        rabbitmq=RabbitMQ(base=tmp_path / "mq", port=2, dist_port=3, epmd_port=4, node_name="x"),
        ports=Ports(),
        keys_dir=tmp_path / "keys",
        role_passwords={"notifications": "pw", "tickets": "pw"},
        mail_sink=MailSink(directory=tmp_path / "mail", port=2525),
    )
    env = stack.env("notifications")

    assert (stack.mail_dir, stack.smtp_port) == (tmp_path / "mail", 2525)
    assert env["BUGTRACKER_SMTP_HOST"] == "127.0.0.1"
    assert env["BUGTRACKER_SMTP_PORT"] == "2525"
    assert env["BUGTRACKER_MAIL_FROM"] == "Bugtracker <bugtracker@localhost>"
    assert env["BUGTRACKER_PUBLIC_URL"] == "http://127.0.0.1:8000"
    assert env["BUGTRACKER_NOTIFICATIONS_INTERNAL_TOKEN"] == stack.internal_token
    assert env["BUGTRACKER_NOTIFICATIONS_AUTH_URL"] == "http://127.0.0.1:8001"
    assert env["BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY"] == stack.notifications_unsubscribe_key
    assert "BUGTRACKER_SMTP_HOST" not in stack.env("tickets")

    # Without a sink, the environment's SMTP server (`make up` runs none then).
    monkeypatch.setenv("BUGTRACKER_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("BUGTRACKER_PUBLIC_URL", "https://bugs.example.com")
    stack.mail_sink = None
    env = stack.env("notifications")
    assert (stack.mail_dir, stack.smtp_port) == (None, None)
    assert env["BUGTRACKER_SMTP_HOST"] == "smtp.example.com"
    assert env["BUGTRACKER_PUBLIC_URL"] == "https://bugs.example.com"
