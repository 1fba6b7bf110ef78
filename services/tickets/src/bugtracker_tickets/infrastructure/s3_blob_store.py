"""Attachments' bytes in an S3-compatible store (docs/adr/0041): the deployment's choice
when BUGTRACKER_ATTACHMENTS_S3_* are set; the same behaviour as LocalBlobStore.

A blob is the object `blobs/<sha256>` of the bucket. An upload's sha256 is known only at
its end, so its bytes go first where no reader looks:

- up to PART_BYTES in all, they are buffered and written with one `put_object` straight
  to `blobs/<sha256>` once complete (a put is atomic: no reader sees half an object);
- beyond that, into a multipart upload of the temporary key `tmp/<uuid>`, a part of
  PART_BYTES (at least; a chunk may overshoot it) at a time, so an upload holds at most
  one part in memory; once complete, the object is copied to `blobs/<sha256>` and the
  temporary key deleted.

A part is a BytesIO, which aiohttp sends in slices of it; a bytes or bytearray body it
copies two or three times over (a 30 MiB upload peaked at 29 MiB that way, at 11 MiB
with BytesIO, measured with tracemalloc against moto).

Past `max_bytes`, on any error and on cancellation, the multipart upload is aborted
(shielded from the cancellation, bounded in time): nothing is kept. A crash leaves at
most a temporary object or an unfinished multipart upload, which `older_than` removes
once older than its cutoff. The same bytes twice are one object; the second put (or
copy) overwrites it and so refreshes its LastModified, which `delete(stored_before=)`
and `older_than` go by. S3 keeps LastModified to the second: a blob counts as stored
before a time only when its whole second is (LastModified + 1 s <= the time), so a
truncated timestamp never makes a fresh blob look old.

The client: one AioSession, and a client opened per call (`async with self._client()`);
`read` keeps its client until the generator ends. Nothing to close at shutdown, no event
loop bound at construction (the store is built before the loop runs), no lock. The cost
is the client's construction (~10-30 ms of CPU, measured against moto) and a new
connection per call; a store kept open would need a closer registered with the runtime.
The session parses botocore's S3 model once (~1 s, ~11 MiB while parsing), on first use.
The bucket is created on first use when missing (`make up` with a fresh store).

Checksums are computed only where the S3 API requires them ("when_required"): newer
botocore sends CRC32 trailers by default, which some S3-compatible stores refuse.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from bugtracker_tickets.application.ports import StoredBlob
from bugtracker_tickets.infrastructure.content_types import Received
from bugtracker_tickets.settings import MIB, AttachmentSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

# A multipart upload's part (S3's least is 5 MiB, but for the last).
PART_BYTES = 8 * MIB
CHUNK_BYTES = 256 * 1024
BLOBS = "blobs/"
TMP = "tmp/"
# S3's LastModified is whole seconds.
_LAST_MODIFIED_RESOLUTION = timedelta(seconds=1)
# How long cleaning up after a failed upload may take (shielded from cancellation).
_CLEANUP_SECONDS = 30.0
_SHA256_HEX = 64
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
_BUCKET_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


def _blob_key(sha256: str) -> str:
    if len(sha256) != _SHA256_HEX or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256")
    return BLOBS + sha256


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _stored_before(last_modified: datetime, cutoff: datetime) -> bool:
    return last_modified + _LAST_MODIFIED_RESOLUTION <= cutoff


class S3BlobStore:
    def __init__(self, settings: AttachmentSettings) -> None:
        self._bucket = settings.s3_bucket
        self._endpoint = settings.s3_endpoint
        self._region = settings.s3_region
        self._access_key = settings.s3_access_key or None
        self._secret_key = settings.s3_secret_key.get_secret_value() or None
        self._presign_seconds = settings.presign_seconds
        self._session = AioSession()
        self._config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._bucket_ready = False

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[S3Client]:
        async with self._session.create_client(
            "s3",
            endpoint_url=self._endpoint,
            region_name=self._region,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            config=self._config,
        ) as s3:
            if not self._bucket_ready:
                await self._ensure_bucket(s3)
            yield s3

    async def _ensure_bucket(self, s3: S3Client) -> None:
        try:
            await s3.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _error_code(exc) not in _MISSING:
                raise
            try:
                if self._region == "us-east-1":
                    await s3.create_bucket(Bucket=self._bucket)
                else:
                    await s3.create_bucket(
                        Bucket=self._bucket,
                        CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                    )
            except ClientError as created:  # another replica was first
                if _error_code(created) not in _BUCKET_EXISTS:
                    raise
        self._bucket_ready = True

    # -- put ---------------------------------------------------------------------------------

    async def put(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        received = Received(max_bytes)
        part = io.BytesIO()
        async with self._client() as s3:
            upload: _MultipartUpload | None = None
            try:
                async for chunk in chunks:
                    received.add(chunk)
                    part.write(chunk)
                    if part.tell() >= PART_BYTES:
                        if upload is None:
                            upload = await _MultipartUpload.start(s3, self._bucket)
                        await upload.add(part)
                        part = io.BytesIO()
                sha256 = received.sha256
                if upload is None:
                    part.seek(0)
                    await s3.put_object(Bucket=self._bucket, Key=_blob_key(sha256), Body=part)
                else:
                    if part.tell():
                        await upload.add(part)
                    part = io.BytesIO()
                    await upload.complete_as(_blob_key(sha256))
            except BaseException:
                if upload is not None:
                    await upload.abort()
                raise
        return received.blob()

    # -- reading -----------------------------------------------------------------------------

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        key = _blob_key(sha256)
        async with self._client() as s3:
            if start == 0 and end is None:
                found = await s3.get_object(Bucket=self._bucket, Key=key)
            else:
                last = "" if end is None else str(end)
                found = await s3.get_object(
                    Bucket=self._bucket, Key=key, Range=f"bytes={start}-{last}"
                )
            async with found["Body"] as body:
                async for chunk in body.iter_chunks(CHUNK_BYTES):
                    yield chunk

    async def presigned_url(
        self, sha256: str, *, filename: str, content_type: str, disposition: str
    ) -> str | None:
        name = quote(filename, safe="")
        async with self._client() as s3:
            url: str = await s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": _blob_key(sha256),
                    "ResponseContentDisposition": f"{disposition}; filename*=UTF-8''{name}",
                    "ResponseContentType": content_type,
                },
                ExpiresIn=self._presign_seconds,
            )
        return url

    # -- the sweep's ---------------------------------------------------------------------------

    async def delete(self, sha256: str, *, stored_before: datetime) -> None:
        key = _blob_key(sha256)
        async with self._client() as s3:
            try:
                found = await s3.head_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    return
                raise
            if _stored_before(found["LastModified"], stored_before):
                await s3.delete_object(Bucket=self._bucket, Key=key)

    async def older_than(self, cutoff: datetime) -> list[str]:
        found: list[str] = []
        async with self._client() as s3:
            objects = s3.get_paginator("list_objects_v2")
            async for page in objects.paginate(Bucket=self._bucket, Prefix=BLOBS):
                for entry in page.get("Contents", []):
                    name = entry["Key"].removeprefix(BLOBS)
                    if len(name) == _SHA256_HEX and _stored_before(entry["LastModified"], cutoff):
                        found.append(name)
            # Uploads abandoned long ago: a temporary object a crash left between the
            # copy and its deletion, or an unfinished multipart upload.
            async for page in objects.paginate(Bucket=self._bucket, Prefix=TMP):
                for entry in page.get("Contents", []):
                    if _stored_before(entry["LastModified"], cutoff):
                        await s3.delete_object(Bucket=self._bucket, Key=entry["Key"])
            uploads = s3.get_paginator("list_multipart_uploads")
            async for listing in uploads.paginate(Bucket=self._bucket, Prefix=TMP):
                for started in listing.get("Uploads", []):
                    if _stored_before(started["Initiated"], cutoff):
                        with contextlib.suppress(ClientError):  # finished or aborted since
                            await s3.abort_multipart_upload(
                                Bucket=self._bucket,
                                Key=started["Key"],
                                UploadId=started["UploadId"],
                            )
        return found


@contextlib.contextmanager
def _cleanup() -> Iterator[None]:
    """Cleaning up after an upload: shielded from a cancellation, bounded in time, and
    never raising over the error being handled (what it leaves, the sweep removes)."""
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(_CLEANUP_SECONDS),
        contextlib.suppress(Exception),
    ):
        yield


class _MultipartUpload:
    """One upload's parts under a temporary key, then its copy to the blob's key."""

    def __init__(self, s3: S3Client, bucket: str, key: str, upload_id: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._upload_id: str | None = upload_id
        self._parts: list[CompletedPartTypeDef] = []

    @classmethod
    async def start(cls, s3: S3Client, bucket: str) -> _MultipartUpload:
        key = f"{TMP}{uuid.uuid4()}"
        created = await s3.create_multipart_upload(Bucket=bucket, Key=key)
        return cls(s3, bucket, key, created["UploadId"])

    async def add(self, part: io.BytesIO) -> None:
        """Upload the bytes written to `part` as the next part."""
        assert self._upload_id is not None  # noqa: S101 (not after complete or abort)
        number = len(self._parts) + 1
        part.seek(0)
        sent = await self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})

    async def complete_as(self, target: str) -> None:
        """Complete the upload and copy it to `target` (overwriting: a refreshed
        LastModified); the temporary object is deleted whatever happens."""
        assert self._upload_id is not None  # noqa: S101
        await self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None
        try:
            await self._s3.copy_object(
                Bucket=self._bucket,
                Key=target,
                CopySource={"Bucket": self._bucket, "Key": self._key},
            )
        finally:
            with _cleanup():
                await self._s3.delete_object(Bucket=self._bucket, Key=self._key)

    async def abort(self) -> None:
        """Drop the parts (nothing of the upload is kept), unless it was completed; a
        failure here leaves the upload for the sweep."""
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        with _cleanup():
            await self._s3.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id
            )
