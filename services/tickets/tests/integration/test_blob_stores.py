"""The blob stores behave alike (docs/adr/0041): the same tests run against LocalBlobStore
(a temporary directory) and S3BlobStore (moto's S3 server, a child process; a fresh bucket
per test, created by the store on first use). No PostgreSQL is needed.

S3 keeps LastModified to the second: the stores count a blob as stored before a time only
when its whole second is, so the tests that tell old from new blobs wait a little over a
second on either side of their cutoff."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiobotocore.session import AioSession, ClientCreatorContext
from bugtracker_testkit.s3 import moto_s3
from bugtracker_tickets.application.ports import BlobStore, BlobTooLargeError
from bugtracker_tickets.infrastructure.blob_store import LocalBlobStore
from bugtracker_tickets.infrastructure.content_types import HEAD_BYTES
from bugtracker_tickets.infrastructure.s3_blob_store import PART_BYTES, S3BlobStore
from bugtracker_tickets.settings import MIB, AttachmentSettings
from pydantic import SecretStr
from types_aiobotocore_s3 import S3Client

pytestmark = pytest.mark.integration

CHUNK = 256 * 1024
# LastModified's resolution on S3, and a margin.
PAST_A_SECOND = 1.1
LATER = timedelta(seconds=2)


@dataclass
class Store:
    """A store under test, and a look at what it leaves behind: its temporary files (or
    objects, or unfinished multipart uploads), and a way to leave one as a crash would."""

    store: BlobStore
    leftovers: Callable[[], Awaitable[list[str]]]
    abandon: Callable[[], Awaitable[None]]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


def _local(root: Path) -> Store:
    tmp = root / "tmp"

    async def leftovers() -> list[str]:
        return sorted(entry.name for entry in tmp.iterdir()) if tmp.exists() else []

    async def abandon() -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / f"{uuid.uuid4()}.part").write_bytes(b"half an upload")

    return Store(LocalBlobStore(root), leftovers, abandon)


def _raw_client(endpoint: str) -> ClientCreatorContext[S3Client]:
    return AioSession().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _s3(endpoint: str) -> Store:
    settings = AttachmentSettings(
        s3_endpoint=endpoint,
        s3_bucket=f"attachments-{uuid.uuid4().hex[:12]}",
        s3_access_key="testing",
        s3_secret_key=SecretStr("testing"),
    )
    bucket = settings.s3_bucket

    async def leftovers() -> list[str]:
        async with _raw_client(endpoint) as s3:
            try:
                objects = await s3.list_objects_v2(Bucket=bucket, Prefix="tmp/")
                uploads = await s3.list_multipart_uploads(Bucket=bucket)
            except s3.exceptions.NoSuchBucket:
                return []
        return sorted(
            [entry["Key"] for entry in objects.get("Contents", [])]
            + [f"upload {upload['Key']}" for upload in uploads.get("Uploads", [])]
        )

    async def abandon() -> None:
        async with _raw_client(endpoint) as s3:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                await s3.create_bucket(Bucket=bucket)
            await s3.put_object(Bucket=bucket, Key=f"tmp/{uuid.uuid4()}", Body=b"copied, kept")
            started = await s3.create_multipart_upload(Bucket=bucket, Key=f"tmp/{uuid.uuid4()}")
            await s3.upload_part(
                Bucket=bucket,
                Key=started["Key"],
                UploadId=started["UploadId"],
                PartNumber=1,
                Body=b"x" * (5 * MIB),
            )

    return Store(S3BlobStore(settings), leftovers, abandon)


@pytest.fixture(params=["local", "s3"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return _local(tmp_path / "attachments")
    return _s3(request.getfixturevalue("s3_endpoint"))


async def chunks_of(data: bytes, size: int = CHUNK) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def read_all(store: BlobStore, sha256: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(sha256, start, end)])


def later() -> datetime:
    return datetime.now(UTC) + LATER


async def test_put_then_read_round_trip(subject: Store) -> None:
    data = b"%PDF-1.7\n" + os.urandom(300_000)
    stored = await subject.store.put(chunks_of(data, 10_000), max_bytes=MIB)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.head == data[:HEAD_BYTES]
    assert await read_all(subject.store, stored.sha256) == data
    assert await subject.leftovers() == []


async def test_an_empty_file(subject: Store) -> None:
    stored = await subject.store.put(chunks_of(b""), max_bytes=MIB)
    assert (stored.sha256, stored.size, stored.head) == (hashlib.sha256().hexdigest(), 0, b"")
    assert await read_all(subject.store, stored.sha256) == b""


async def test_ranges(subject: Store) -> None:
    data = os.urandom(700_000)
    sha256 = (await subject.store.put(chunks_of(data), max_bytes=MIB)).sha256
    size = len(data)
    assert await read_all(subject.store, sha256, 0, 9) == data[:10]
    assert await read_all(subject.store, sha256, 300_000, 599_999) == data[300_000:600_000]
    assert await read_all(subject.store, sha256, size - 10, size - 1) == data[-10:]
    assert await read_all(subject.store, sha256, size - 10) == data[-10:]
    assert await read_all(subject.store, sha256, 5, 5) == data[5:6]
    # In chunks, never the whole file in one.
    pieces = [chunk async for chunk in subject.store.read(sha256)]
    assert len(pieces) > 1
    assert max(len(piece) for piece in pieces) < size


async def test_a_multipart_upload(subject: Store) -> None:
    data = os.urandom(9 * MIB)  # more than one part on S3
    assert len(data) > PART_BYTES
    stored = await subject.store.put(chunks_of(data, MIB), max_bytes=25 * MIB)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.head == data[:HEAD_BYTES]
    assert await read_all(subject.store, stored.sha256) == data
    tail = await read_all(subject.store, stored.sha256, len(data) - 100)
    assert tail == data[-100:]
    assert await subject.leftovers() == []
    assert await subject.store.older_than(later()) == [stored.sha256]


async def test_memory_stays_bounded_by_a_part(subject: Store) -> None:
    """30 MiB go through the store; the chunks are made as they are asked for (one chunk
    object, yielded again and again), so what tracemalloc sees is the store's own. A
    first small upload loads what a client loads once (botocore's S3 model: some 11 MiB
    while it is parsed), which is no upload's cost."""
    chunk = os.urandom(CHUNK)
    total = 30 * MIB
    await subject.store.put(chunks_of(b"warm-up"), max_bytes=MIB)

    async def produce() -> AsyncIterator[bytes]:
        for _ in range(total // CHUNK):
            yield chunk

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        stored = await subject.store.put(produce(), max_bytes=total)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == total
    print(f"{type(subject.store).__name__}: peak {peak / MIB:.1f} MiB for a 30 MiB put")  # noqa: T201
    assert peak < 20 * MIB


async def test_too_large_keeps_nothing(subject: Store) -> None:
    produced = 0

    async def produce() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(400):  # 100 MiB, if the store asked for all of it
            produced += CHUNK
            yield os.urandom(CHUNK)

    max_bytes = 17 * MIB  # past two parts on S3: its multipart upload is aborted
    with pytest.raises(BlobTooLargeError):
        await subject.store.put(produce(), max_bytes=max_bytes)
    # The chunks were taken one at a time, and none after the limit.
    assert produced <= max_bytes + CHUNK
    assert await subject.leftovers() == []
    assert await subject.store.older_than(later()) == []

    with pytest.raises(BlobTooLargeError):  # the small path too
        await subject.store.put(chunks_of(b"x" * 100, 10), max_bytes=99)
    assert await subject.store.older_than(later()) == []
    assert await subject.leftovers() == []


async def test_the_same_bytes_twice_are_stored_once(subject: Store) -> None:
    small, large = os.urandom(1000), os.urandom(PART_BYTES + 1000)
    first = await subject.store.put(chunks_of(small), max_bytes=25 * MIB)
    again = await subject.store.put(chunks_of(small, 7), max_bytes=25 * MIB)
    assert first == again
    big = await subject.store.put(chunks_of(large, MIB), max_bytes=25 * MIB)
    assert await subject.store.put(chunks_of(large, 3 * MIB), max_bytes=25 * MIB) == big
    assert sorted(await subject.store.older_than(later())) == sorted([first.sha256, big.sha256])
    assert await read_all(subject.store, big.sha256) == large
    assert await subject.leftovers() == []


async def test_delete_only_what_was_stored_before(subject: Store) -> None:
    data = os.urandom(5000)
    sha256 = (await subject.store.put(chunks_of(data), max_bytes=MIB)).sha256
    await subject.store.delete(sha256, stored_before=datetime.now(UTC) - timedelta(hours=1))
    assert await read_all(subject.store, sha256) == data
    await subject.store.delete(sha256, stored_before=later())
    assert await subject.store.older_than(later()) == []
    with pytest.raises(Exception):  # noqa: B017, PT011 (FileNotFoundError, S3's NoSuchKey)
        await read_all(subject.store, sha256)
    await subject.store.delete(sha256, stored_before=later())  # gone already: nothing to do


async def test_the_sweep_sees_only_old_blobs_and_a_new_upload_refreshes_one(
    subject: Store,
) -> None:
    store = subject.store
    kept, refreshed = os.urandom(2000), os.urandom(2000)
    refreshed_large = os.urandom(PART_BYTES + 10)  # refreshed by S3's copy
    old = (await store.put(chunks_of(kept), max_bytes=25 * MIB)).sha256
    small = (await store.put(chunks_of(refreshed), max_bytes=25 * MIB)).sha256
    large = (await store.put(chunks_of(refreshed_large, MIB), max_bytes=25 * MIB)).sha256
    await asyncio.sleep(PAST_A_SECOND)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(PAST_A_SECOND)
    new = (await store.put(chunks_of(os.urandom(3000)), max_bytes=MIB)).sha256
    await store.put(chunks_of(refreshed), max_bytes=25 * MIB)
    await store.put(chunks_of(refreshed_large, MIB), max_bytes=25 * MIB)

    assert await store.older_than(cutoff) == [old]
    for sha256 in (old, small, large, new):
        await store.delete(sha256, stored_before=cutoff)
    assert sorted(await store.older_than(later())) == sorted([small, large, new])
    assert await read_all(store, small) == refreshed
    assert await read_all(store, large) == refreshed_large


async def test_the_sweep_removes_abandoned_uploads(subject: Store) -> None:
    await subject.abandon()
    assert await subject.leftovers() != []
    await subject.store.older_than(datetime.now(UTC) - timedelta(hours=1))
    assert await subject.leftovers() != []  # too young to be abandoned
    assert await subject.store.older_than(later()) == []
    assert await subject.leftovers() == []


async def test_a_cancelled_upload_leaves_nothing(subject: Store) -> None:
    waiting, never = asyncio.Event(), asyncio.Event()

    async def produce() -> AsyncIterator[bytes]:
        for _ in range(PART_BYTES // CHUNK + 8):  # a part sent on S3, then some
            yield os.urandom(CHUNK)
        waiting.set()
        await never.wait()  # the client stops sending
        yield b"never"

    upload = asyncio.create_task(subject.store.put(produce(), max_bytes=25 * MIB))
    await asyncio.wait_for(waiting.wait(), 30)
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload
    assert await subject.leftovers() == []
    assert await subject.store.older_than(later()) == []


async def test_a_presigned_url_serves_the_bytes_with_their_headers(subject: Store) -> None:
    data = os.urandom(4000)
    sha256 = (await subject.store.put(chunks_of(data), max_bytes=MIB)).sha256
    url = await subject.store.presigned_url(
        sha256, filename="résumé final.pdf", content_type="application/pdf", disposition="inline"
    )
    if isinstance(subject.store, LocalBlobStore):
        assert url is None  # the service streams the file itself
        return
    assert url is not None
    assert "X-Amz-Expires=300" in url
    async with httpx.AsyncClient() as http:
        got = await http.get(url)
    assert got.status_code == 200, got.text
    assert got.content == data
    assert got.headers["content-disposition"] == (
        "inline; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf"
    )
    assert got.headers["content-type"] == "application/pdf"
