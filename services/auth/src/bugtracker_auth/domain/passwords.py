"""Password rules of NIST SP 800-63B-4 for a single factor, without I/O: length, a list of
common and breached passwords, and nothing derived from the account itself."""

from __future__ import annotations

import re
from collections.abc import Container

from bugtracker_auth.domain.errors import WeakPasswordError

MIN_LENGTH = 15
# The placeholders of .env.example and their kind (`change-me-admin-password` passed).
PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|placeholder")
MAX_LENGTH = 128


def _is_repetition(password: str) -> bool:
    """`aaaaaaaaaaaaaaa`, `abcabcabcabcabc`: one short unit repeated."""
    size = len(password)
    return any(
        size % unit == 0 and password[:unit] * (size // unit) == password
        for unit in range(1, min(4, size // 2) + 1)
    )


def check_password(
    password: str,
    *,
    email: str,
    display_name: str,
    common: Container[str],
) -> None:
    """Raise `WeakPasswordError` when the password may not be chosen."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise WeakPasswordError(f"The password must have {MIN_LENGTH} to {MAX_LENGTH} characters.")
    folded = password.casefold()
    stripped = folded.strip()
    if PLACEHOLDER.search(folded):
        raise WeakPasswordError("The password may not be a placeholder such as change-me.")
    if folded in common or stripped in common:
        raise WeakPasswordError("This password is too common; it appears in breached data.")
    own = {email.casefold(), email.casefold().split("@", 1)[0], display_name.strip().casefold()}
    if stripped in own:
        raise WeakPasswordError("The password may not be the email or the display name.")
    if _is_repetition(folded):
        raise WeakPasswordError("The password may not be a short sequence repeated.")
