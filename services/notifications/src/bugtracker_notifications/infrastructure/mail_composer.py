"""A `MailContent` rendered as the e-mail it is sent as (docs/api.md, "E-mail
notifications and preferences").

One message per notification (or digest): multipart/alternative, a plain-text part then
an HTML part, both from the Jinja2 templates in `mail_templates/`, so clients that show
HTML and those that do not read the same thing. The headers carry what mail clients and
servers act on: `Message-ID` (one per mail, the same on every attempt, so a retried
send is recognisably the same message), `In-Reply-To`/`References` (the ticket's thread
id, so clients group a ticket's mails), `Auto-Submitted`/`X-Auto-Response-Suppress`
(no vacation replies or bounces back at us, RFC 3834), and RFC 8058 one-click
unsubscribe (`List-Unsubscribe` plus `List-Unsubscribe-Post`), which large mail providers
require of bulk senders.

Names, titles and summaries come from users. Header values are stripped of every line
break, so no value can start a header of its own (header injection); the HTML part is
autoescaped, so a title like `<script>` is shown, never run; a recipient address must
be exactly one address, so it cannot add recipients.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bugtracker_notifications.domain.mail import MailContent, message_id, thread_id

# Every character `str.splitlines` breaks on (CR, LF, VT, FF, FS, GS, RS, NEL, LS, PS),
# with the runs of whitespace around them: any of them may end a header line somewhere.
_LINE_BREAKS = re.compile(r"\s*[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+\s*")
# The other control characters have no place in a header either.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")

PREFERENCES_PATH = "/api/v1/users/me/notification-preferences"
FALLBACK_DOMAIN = "localhost"


def header_value(value: str) -> str:
    """`value` on one line: every line break (and the whitespace around it) becomes one
    space and other control characters go, so it cannot end its header and start
    another (`Bcc:` smuggled in a ticket title or a display name)."""
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", value)).strip()


def message_id_for(mail_id: uuid.UUID, domain: str) -> str:
    """The `Message-ID` of a mail (`<id@domain>`): derived from the mail's id, so a send
    repeated after a crash carries the same one and clients show it once."""
    return message_id(mail_id, header_value(domain))


def thread_id_for(ticket_id: uuid.UUID, domain: str) -> str:
    """The id every mail about a ticket answers (`In-Reply-To`, `References`): no message
    carries it, yet clients thread on it, so a ticket's mails show as one conversation."""
    return thread_id(ticket_id, header_value(domain))


def mail_domain(sender: str, public_url: str) -> str:
    """The domain our message ids live under: that of `BUGTRACKER_MAIL_FROM`'s address
    (the domain we send as, so ids are unique to us), else the public URL's host, else
    `localhost` (ids must still be well-formed on a bare development setup)."""
    _, address = parseaddr(header_value(sender))
    _, at, domain = address.rpartition("@")
    if at and domain.strip():
        return domain.strip().lower()
    host = urlsplit(public_url.strip()).hostname
    return host.lower() if host else FALLBACK_DOMAIN


def _is_web_url(value: object) -> bool:
    """Only http(s) URLs become links: any other scheme (`javascript:`) stays text."""
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


def _utc(value: datetime) -> str:
    """A digest item's time, in UTC with the zone named: the mail is read in any zone."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _one_line(value: str) -> str:
    """A digest item's summary on one line: the digest shows one line per item."""
    return " ".join(value.split())


def _environment() -> Environment:
    """The templates' environment: HTML autoescaped (user text is shown, not run), text
    not (it would show `&lt;`); undefined names fail loudly rather than render empty."""
    environment = Environment(
        loader=PackageLoader("bugtracker_notifications.infrastructure", "mail_templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["utc"] = _utc
    environment.filters["one_line"] = _one_line
    environment.tests["web_url"] = _is_web_url
    return environment


class MailComposer:
    """Builds the `EmailMessage` of a `MailContent`; it renders, it does not decide: the
    subject, ids and URLs come made in the content (application/mail.py)."""

    def __init__(self, *, sender: str, public_url: str) -> None:
        self._sender = header_value(sender)
        self._public_url = public_url.strip().rstrip("/")
        self._environment = _environment()

    def compose(self, content: MailContent) -> EmailMessage:
        """The message, ready for `SmtpMailer.send`. Raises `ValueError` when the
        recipient's address is not exactly one valid address."""
        message = EmailMessage(policy=SMTP)
        message["From"] = self._sender
        message["To"] = self._recipient(content)
        message["Subject"] = header_value(content.subject)
        message["Date"] = datetime.now(UTC)
        message["Message-ID"] = header_value(content.message_id)
        if content.thread_id:
            thread = header_value(content.thread_id)
            message["In-Reply-To"] = thread
            message["References"] = thread
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        if content.unsubscribe_url:
            message["List-Unsubscribe"] = f"<{header_value(content.unsubscribe_url)}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

        template = "digest" if content.items else "notification"
        context = self._context(content)
        text = self._environment.get_template(f"{template}.txt").render(context)
        html = self._environment.get_template(f"{template}.html").render(context)
        message.set_content(text, subtype="plain", charset="utf-8")
        message.add_alternative(html, subtype="html", charset="utf-8")
        return message

    @staticmethod
    def _recipient(content: MailContent) -> Address:
        """The `To` address (the same as `formataddr((name, address))`, but built by the
        header registry, which quotes and encodes the name itself). An address that is
        not exactly one addr-spec (`a@x, b@y`) is refused: it would add recipients."""
        address = header_value(content.to_address)
        try:
            return Address(display_name=header_value(content.to_name), addr_spec=address)
        except (ValueError, IndexError) as exc:  # HeaderParseError is a ValueError
            raise ValueError(f"not a single e-mail address: {address!r}") from exc

    def _context(self, content: MailContent) -> dict[str, Any]:
        return {
            "subject": header_value(content.subject),
            "summary_lines": [line for line in content.summary.splitlines() if line.strip()],
            "actor_name": content.actor_name,
            "ticket_key": content.ticket_key,
            "title": content.title,
            "ticket_url": content.ticket_url,
            "notification_type": content.notification_type,
            "unsubscribe_url": content.unsubscribe_url,
            "items": content.items,
            "public_url": self._public_url,
            "preferences_url": f"{self._public_url}{PREFERENCES_PATH}",
        }
