"""The attachment endpoints (docs/adr/0041): upload and list on a ticket; metadata,
content and deletion by the attachment's id."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from bugtracker_shared.pagination import Page
from bugtracker_shared.problems import problem_response
from bugtracker_shared.web import (
    CurrentPrincipal,
    IfNoneMatch,
    Paging,
    ResponseModel,
    from_app_state,
)
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from bugtracker_tickets.api.uploads import MAX_OVERHEAD_BYTES, file_part
from bugtracker_tickets.application.attachments import AttachmentUseCases
from bugtracker_tickets.domain.attachments import Attachment
from bugtracker_tickets.domain.errors import AttachmentTooLargeError

Attachments = Annotated[
    AttachmentUseCases, Depends(from_app_state(AttachmentUseCases, "attachment_cases"))
]

router = APIRouter(prefix="/api/v1", tags=["attachments"])


class AttachmentResponse(ResponseModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    uploader_id: uuid.UUID
    created_at: datetime

    @classmethod
    def of(cls, attachment: Attachment) -> AttachmentResponse:
        return cls.from_attributes(attachment)


class AttachmentPage(Page[AttachmentResponse]):
    pass


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post("/tickets/{ticket_ref}/attachments", status_code=201, openapi_extra=_UPLOAD_BODY)
async def upload_attachment(
    ticket_ref: str,
    request: Request,
    principal: CurrentPrincipal,
    cases: Attachments,
    response: Response,
) -> AttachmentResponse:
    """One `file` part of multipart/form-data, streamed to storage (at most
    BUGTRACKER_ATTACHMENTS_MAX_BYTES; 413 beyond). The content type is sniffed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cases.max_bytes + MAX_OVERHEAD_BYTES:
        raise AttachmentTooLargeError(cases.max_bytes)
    filename, chunks = await file_part(request)
    attachment = await cases.upload(principal, ticket_ref, filename, chunks)
    response.headers["Location"] = f"/api/v1/attachments/{attachment.id}"
    return AttachmentResponse.of(attachment)


@router.get("/tickets/{ticket_ref}/attachments")
async def list_attachments(
    ticket_ref: str, principal: CurrentPrincipal, cases: Attachments, paging: Paging
) -> AttachmentPage:
    """Oldest first."""
    listing = await cases.list_attachments(
        principal, ticket_ref, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(AttachmentPage, listing, AttachmentResponse.of)


@router.get("/attachments/{attachment_id}")
async def get_attachment(
    attachment_id: uuid.UUID, principal: CurrentPrincipal, cases: Attachments
) -> AttachmentResponse:
    return AttachmentResponse.of(await cases.get_attachment(principal, attachment_id))


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range `header` asks for, as (first, last) within `size` bytes; None for
    the whole file (no header, several ranges, or a form this server ignores).
    Raises ValueError when the range cannot be satisfied (416)."""
    found = _RANGE.match(header.strip()) if header else None
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(size - length, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored (RFC 9110 14.1.1), the whole file
    if start >= size:
        raise ValueError("range outside the file")
    return start, min(int(last), size - 1) if last else size - 1


def _content_headers(attachment: Attachment) -> dict[str, str]:
    name = quote(attachment.filename, safe="")
    return {
        "ETag": f'"{attachment.sha256}"',
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"{attachment.disposition}; filename*=UTF-8''{name}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }


@router.get(
    "/attachments/{attachment_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The bytes"},
        206: {"content": {"application/octet-stream": {}}, "description": "The range asked"},
        302: {"description": "A presigned URL of the object store, valid at most 5 minutes"},
        304: {"description": "Not modified (If-None-Match names the sha256)"},
    },
)
async def download_attachment(
    attachment_id: uuid.UUID,
    principal: CurrentPrincipal,
    cases: Attachments,
    range_: Annotated[str | None, Header(alias="Range")] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The bytes, streamed, with `ETag` (the sha256) and `Range` support; inline only
    for png, jpeg, gif and webp."""
    download = await cases.download(principal, attachment_id)
    attachment = download.attachment
    headers = _content_headers(attachment)
    if download.redirect is not None:
        return RedirectResponse(download.redirect, status_code=302)
    # `*` matches any current representation (RFC 9110 13.1.2).
    if if_none_match is not None and (
        if_none_match.strip() == "*" or headers["ETag"] in if_none_match
    ):
        return Response(status_code=304, headers=headers)
    try:
        wanted = byte_range(range_, attachment.size)
    except ValueError:
        return problem_response(
            416,
            "range_not_satisfiable",
            f"The range is outside the file's {attachment.size} bytes.",
            instance=f"/api/v1/attachments/{attachment_id}/content",
            headers={"Content-Range": f"bytes */{attachment.size}"},
        )
    if wanted is None:
        body = cases.store.read(attachment.sha256)
        headers["Content-Length"] = str(attachment.size)
        return _stream(body, 200, headers, attachment.content_type)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{attachment.size}"
    headers["Content-Length"] = str(last - first + 1)
    body = cases.store.read(attachment.sha256, first, last)
    return _stream(body, 206, headers, attachment.content_type)


def _stream(
    body: AsyncIterator[bytes], status: int, headers: dict[str, str], media_type: str
) -> StreamingResponse:
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


@router.delete("/attachments/{attachment_id}", status_code=204)
async def delete_attachment(
    attachment_id: uuid.UUID, principal: CurrentPrincipal, cases: Attachments
) -> None:
    """The uploader, or a maintainer; the bytes are removed after the row."""
    await cases.delete_attachment(principal, attachment_id)


# The error answers each operation's route does not reveal (docs/adr/0031).
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/tickets/{ticket_ref}/attachments"): {403, 409, 413},
    ("DELETE", "/api/v1/attachments/{attachment_id}"): {403, 409},
    ("GET", "/api/v1/attachments/{attachment_id}/content"): {416},
}
