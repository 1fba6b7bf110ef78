"""The mails a test stack's SMTP sink kept (bugtracker_devstack.mailsink): one RFC 5322
`.eml` file per message in `Stack.mail_dir`, named so that sorting the names sorts the
messages by arrival."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path


def read_mails(directory: Path) -> list[EmailMessage]:
    """Every message in `directory`, oldest first, parsed with `email.policy.default`
    (headers decoded, `get_body()`, `iter_attachments()`); none if it does not exist yet.
    Files are complete: the sink renames each into place once written. The files keep
    SMTP's CRLF line ends; they are read with LF ones, as the `email` package expects, so
    that a text part's content has no stray carriage returns (SMTP without BINARYMIME
    carries no raw binary that this could change)."""
    if not directory.is_dir():
        return []
    mails = []
    for path in sorted(directory.glob("*.eml"), key=lambda p: p.name):
        data = path.read_bytes().replace(b"\r\n", b"\n")
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)  # noqa: S101 (what policy.default makes)
        mails.append(message)
    return mails
