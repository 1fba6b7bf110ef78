"""Ticket lists as files: `Accept: text/csv` (RFC 4180, a header row, custom fields as
`field.<key>` columns) or `Accept: application/x-ndjson` (one ticket as JSON a line),
streamed as the pages are read (docs/adr/0045)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi.responses import StreamingResponse

from bugtracker_tickets.api.schemas import TicketResponse
from bugtracker_tickets.application.ticket_export import TicketExport
from bugtracker_tickets.domain.tickets import Ticket

Format = Literal["csv", "ndjson"]
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
# The list routes' answers besides JSON, for the OpenAPI document.
EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
        "description": "The page as JSON, or with `Accept: text/csv` or "
        "`application/x-ndjson` every matching ticket, streamed",
    }
}
CHUNK_BYTES = 64 * 1024
COLUMNS = (
    "key",
    "id",
    "project_id",
    "type",
    "status",
    "status_category",
    "priority",
    "title",
    "description",
    "resolution",
    "reporter_id",
    "assignee_id",
    "labels",
    "due_date",
    "milestone_id",
    "parent_id",
    "created_at",
    "updated_at",
    "version",
)
# A cell a spreadsheet would run as a formula starts with one of these (OWASP's CSV
# injection advice): such text gets a leading apostrophe in CSV, never in NDJSON.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_format(accept: str | None) -> Format | None:
    """The export the `Accept` header asks for, if it names one before any JSON."""
    for part in (accept or "").split(","):
        media_type = part.split(";", 1)[0].strip().lower()
        if media_type == "text/csv":
            return "csv"
        if media_type == "application/x-ndjson":
            return "ndjson"
        if media_type in ("application/json", "application/problem+json", "*/*"):
            return None
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def csv_row(ticket: Ticket, field_keys: list[str]) -> list[str]:
    own = [_cell(getattr(ticket, column)) for column in COLUMNS]
    return own + [_cell(ticket.fields.get(key)) for key in field_keys]


async def _csv(export: TicketExport) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*COLUMNS, *(f"field.{key}" for key in export.field_keys)])
    async for ticket in export.tickets:
        writer.writerow(csv_row(ticket, export.field_keys))
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def _ndjson(export: TicketExport) -> AsyncIterator[bytes]:
    lines: list[str] = []
    size = 0
    async for ticket in export.tickets:
        line = TicketResponse.of(ticket).model_dump_json()
        lines.append(line)
        size += len(line) + 1
        if size >= CHUNK_BYTES:
            yield ("\n".join(lines) + "\n").encode()
            lines, size = [], 0
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def streamed(export: TicketExport, form: Format, name: str) -> StreamingResponse:
    body = _csv(export) if form == "csv" else _ndjson(export)
    media_type = MEDIA_TYPES[form]
    filename = json.dumps(f"{name}.{form}")  # a quoted string for the header
    return StreamingResponse(
        body,
        media_type=f"{media_type}; charset=utf-8" if form == "csv" else media_type,
        headers={
            "Content-Disposition": f"attachment; filename={filename}",
            "X-Total-Count": str(export.total),
            "Cache-Control": "no-store",
        },
    )
