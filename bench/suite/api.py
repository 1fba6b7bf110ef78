"""A small JSON client for the gateway's API, used to set up the data and to check limits."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

TOO_MANY_REQUESTS = 429
MAX_WAITS = 5


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:300]}")
        self.status = status


class Api:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        expect: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """The decoded JSON body (None when empty); waits out a 429 a few times."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(MAX_WAITS):
            async with self.session.request(
                method, self.base_url + path, json=json, headers=headers
            ) as response:
                text = await response.text()
                if response.status == TOO_MANY_REQUESTS:
                    wait = int(response.headers.get("Retry-After", "5"))
                    print(f"  rate limited on {method} {path}; waiting {wait} s")
                    await asyncio.sleep(wait)
                    continue
                if response.status not in expect:
                    raise ApiError(method, path, response.status, text)
                return await response.json(content_type=None) if text else None
        raise ApiError(method, path, TOO_MANY_REQUESTS, "still rate limited")

    async def headers(self, path: str) -> dict[str, str]:
        async with self.session.get(self.base_url + path) as response:
            await response.read()
            return {name.lower(): value for name, value in response.headers.items()}

    async def login(self, email: str, password: str) -> str:
        body = await self.call(
            "POST", "/api/v1/auth/login", json={"email": email, "password": password}
        )
        return str(body["access_token"])

    async def total(self, path: str, token: str) -> int:
        """How many items a list endpoint has (`include_total=true`)."""
        sep = "&" if "?" in path else "?"
        body = await self.call("GET", f"{path}{sep}limit=1&include_total=true", token=token)
        return int(body["total"])


async def gateway_is_up(session: aiohttp.ClientSession, base_url: str) -> str | None:
    """None when the gateway answers /health with 200, else what went wrong."""
    try:
        async with session.get(
            base_url + "/health", timeout=aiohttp.ClientTimeout(total=5)
        ) as response:
            if response.status == 200:  # noqa: PLR2004
                return None
            return f"/health answered {response.status}: {(await response.text())[:300]}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
