"""argon2id with OWASP's parameters (m=19 MiB, t=2, p=1), always off the event loop, and
the bundled list of common and breached passwords."""

from __future__ import annotations

import asyncio
from importlib.resources import files

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

OWASP_MEMORY_KIB = 19_456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1


class Argon2PasswordHasher:
    def __init__(
        self,
        *,
        memory_kib: int = OWASP_MEMORY_KIB,
        time_cost: int = OWASP_TIME_COST,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # A real hash to verify against when the email is unknown, so timing tells nothing.
        self._decoy = self._hasher.hash("decoy password that never matches anything")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    async def burn(self, password: str) -> None:
        await self.verify(self._decoy, password)


class BundledCommonPasswords:
    """`data/common-passwords.txt` (one per line, `#` comments), case-folded into a set."""

    def __init__(self, text: str | None = None) -> None:
        if text is None:
            text = (
                files("bugtracker_auth")
                .joinpath("data/common-passwords.txt")
                .read_text(encoding="utf-8")
            )
        self._passwords = frozenset(
            line.strip().casefold()
            for line in text.splitlines()
            if line.strip() and not line.startswith("#")
        )

    def __contains__(self, password: object) -> bool:
        return isinstance(password, str) and password.casefold() in self._passwords

    def __len__(self) -> int:
        return len(self._passwords)
