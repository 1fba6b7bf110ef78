"""Attachments' bytes in a local directory (docs/adr/0041): `make up` keeps them under
`.data/attachments`, a deployment on a volume.

A blob is the file `<root>/<sha256[:2]>/<sha256>`. An upload is written to
`<root>/tmp/<random>.part` while its sha256 is computed, flushed to disk, and only then
renamed to its name (atomic on one file system): a crash or a cut connection leaves a
temporary file, never a partial blob, and `older_than` removes temporary files left
behind. The same bytes uploaded twice are stored once.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import anyio

from bugtracker_tickets.application.ports import StoredBlob
from bugtracker_tickets.infrastructure.content_types import Received

CHUNK_BYTES = 256 * 1024
_SHA256_HEX = 64


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._tmp = root / "tmp"

    def _path(self, sha256: str) -> Path:
        if len(sha256) != _SHA256_HEX or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256")
        return self._root / sha256[:2] / sha256

    async def put(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        await anyio.Path(self._tmp).mkdir(parents=True, exist_ok=True)
        part = self._tmp / f"{uuid.uuid4()}.part"
        received = Received(max_bytes)
        try:
            async with await anyio.open_file(part, "wb") as out:
                async for chunk in chunks:
                    received.add(chunk)
                    await out.write(chunk)
                await out.flush()
                await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
            target = self._path(received.sha256)
            await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
            await anyio.to_thread.run_sync(os.replace, part, target)
        finally:
            await anyio.Path(part).unlink(missing_ok=True)
        return received.blob()

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        left = None if end is None else end - start + 1
        async with await anyio.open_file(self._path(sha256), "rb") as source:
            await source.seek(start)
            while left is None or left > 0:
                chunk = await source.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def presigned_url(
        self, sha256: str, *, filename: str, content_type: str, disposition: str
    ) -> str | None:
        del sha256, filename, content_type, disposition  # no URL: the service streams
        return None

    async def delete(self, sha256: str, *, stored_before: datetime) -> None:
        await anyio.to_thread.run_sync(self._delete, self._path(sha256), stored_before.timestamp())

    @staticmethod
    def _delete(path: Path, stored_before: float) -> None:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < stored_before:
                path.unlink()

    async def older_than(self, cutoff: datetime) -> list[str]:
        return await anyio.to_thread.run_sync(self._older_than, cutoff.timestamp())

    def _older_than(self, cutoff: float) -> list[str]:
        if not self._root.exists():
            return []
        found = []
        for folder in self._root.iterdir():
            for entry in folder.iterdir() if folder.is_dir() else ():
                if entry.stat().st_mtime >= cutoff:
                    continue
                if folder == self._tmp:
                    entry.unlink(missing_ok=True)  # an upload abandoned long ago
                elif len(entry.name) == _SHA256_HEX:
                    found.append(entry.name)
        return found
