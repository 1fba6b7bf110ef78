"""The base of every service's domain errors (a contract module: no framework).

A domain error is a plain exception with a stable `code`; the API edge maps its class to
an HTTP status and its text to the problem's `detail` (ADR 0017). An error that always
says the same names its text once, as `message`, instead of passing it in `__init__`.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"
    # The text when the error is raised without one; empty: no default text.
    message: ClassVar[str] = ""

    def __init__(self, *args: object) -> None:
        if not args and self.message:
            args = (self.message,)
        super().__init__(*args)
