"""Sending a composed message over SMTP (aiosmtplib).

One connection per message: mails go out a few at a time from a background job, so a
connection kept open would mostly sit idle until the server drops it, and every send
would first have to find out whether it still works. Connecting afresh costs one round
trip and leaves no state to repair after a failure.

Failures come out as one of two errors, which decide the mail's fate:
`TransientMailError` (retried later: the server is away, slow, or answered 4xx "try
later") and `PermanentMailError` (the mail fails: the server answered 5xx to this
message, e.g. the recipient does not exist). Failures that are about our setup rather
than the message (authentication refused, STARTTLS not offered, the greeting refused)
are transient even when the reply is 5xx: failing every queued mail for good while an
operator fixes a password would lose them; retried, they go out once it is fixed, or
fail when they have kept failing for too long. Error messages are one short line (they
are stored on the mail row and logged), never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from bugtracker_notifications.domain.errors import MailDeferredError, MailRefusedError

ERROR_MAX_CHARS = 200
_PERMANENT_CODES = range(500, 600)


class TransientMailError(MailDeferredError):
    """Not sent this time; sending again later may work. A subclass of the domain's
    `MailDeferredError`, so the application handles it without knowing of SMTP."""


class PermanentMailError(MailRefusedError):
    """The server refused this message for good; sending it again would fail the same
    way. A subclass of the domain's `MailRefusedError`."""


@dataclass(frozen=True)
class SmtpSettings:
    """`BUGTRACKER_SMTP_HOST`, `_PORT`, `_USERNAME`, `_PASSWORD`, `_STARTTLS`. An empty
    username means no authentication (a local relay)."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    starttls: bool
    timeout_seconds: float = 10.0


def _short(text: str) -> str:
    """A server's reply on one line, cut to a length fit for a log line and a column."""
    line = " ".join(text.split())
    return line if len(line) <= ERROR_MAX_CHARS else line[: ERROR_MAX_CHARS - 1] + "…"


def _by_code(code: int, what: str) -> TransientMailError | PermanentMailError:
    """5xx replies are permanent (RFC 5321 4.2.1), everything else is worth a retry."""
    if code in _PERMANENT_CODES:
        return PermanentMailError(what)
    return TransientMailError(what)


class SmtpMailer:
    """Sends `EmailMessage`s to the configured server, one connection per message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> None:
        """Send `message` to the addresses of its `To` (and `Cc`/`Bcc`) headers, from
        its `From`. Raises `TransientMailError` or `PermanentMailError`."""
        settings = self._settings
        try:
            refused, _ = await aiosmtplib.send(
                message,
                hostname=settings.host,
                port=settings.port,
                username=settings.username or None,
                password=settings.password if settings.username else None,
                start_tls=settings.starttls,
                timeout=settings.timeout_seconds,
            )
        except SMTPRecipientsRefused as exc:  # every recipient refused
            codes = [refusal.code for refusal in exc.recipients]
            reply = exc.recipients[0].message if exc.recipients else ""
            code = max(codes, default=550)
            # Only when every refusal is permanent is the message lost for good.
            raise _by_code(
                code if all(c in _PERMANENT_CODES for c in codes) else 450,
                _short(f"recipient refused: {code} {reply}"),
            ) from None
        except SMTPAuthenticationError as exc:
            raise TransientMailError(
                _short(f"SMTP authentication failed: {exc.code} {exc.message}")
            ) from None
        except (SMTPHeloError, SMTPConnectError) as exc:
            # The greeting or HELO answered with an error code, or connection refused.
            detail = (
                f"{exc.code} {exc.message}" if isinstance(exc, SMTPResponseException) else str(exc)
            )
            raise TransientMailError(
                _short(f"cannot connect to the SMTP server: {detail}")
            ) from None
        except SMTPResponseException as exc:  # MAIL FROM, DATA: about this message
            raise _by_code(exc.code, _short(f"SMTP {exc.code} {exc.message}")) from None
        except SMTPTimeoutError:
            raise TransientMailError(
                f"SMTP server {settings.host}:{settings.port} timed out"
            ) from None
        except SMTPServerDisconnected as exc:
            raise TransientMailError(_short(f"SMTP server disconnected: {exc}")) from None
        except SMTPNotSupported as exc:  # e.g. STARTTLS asked for, not offered
            raise TransientMailError(_short(f"SMTP server lacks a feature: {exc}")) from None
        except (SMTPException, OSError) as exc:
            raise TransientMailError(_short(f"SMTP failure: {exc}")) from None
        if refused:
            # Some recipients refused, others accepted: sending again would duplicate
            # the message to those who got it, so it counts as refused for good.
            first = next(iter(refused.values()))
            raise PermanentMailError(
                _short(f"recipient refused: {first.code} {first.message}")
            ) from None
