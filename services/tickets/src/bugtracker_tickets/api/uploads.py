"""An upload's `file` part read from the request as it arrives (docs/adr/0041): a
`multipart/form-data` body is parsed by python-multipart's streaming parser, chunk by
chunk, and the file's bytes are handed on as they come, never held whole in memory.

`file_part` returns the part's filename and an iterator of its bytes; the bytes of other
parts are refused (422), as is a body without a `file` part or with a second one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from bugtracker_tickets.domain.errors import InvalidUploadError

FILE_PART = b"file"
# Everything of a body but the file's bytes (boundaries, part headers) stays below this.
MAX_OVERHEAD_BYTES = 16 * 1024


@dataclass
class _Parts:
    """What the parser's callbacks saw in the chunk just fed, in order."""

    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytes = b""
    value: bytes = b""
    data: list[bytes] = field(default_factory=list)
    file_started: bool = False
    file_ended: bool = False
    files: int = 0
    filename: str = ""
    other_bytes: int = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field_name.lower()] = self.value
        self.field_name, self.value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") == FILE_PART and b"filename" in options:
            self.files += 1
            self.file_started = self.files == 1
            self.filename = options[b"filename"].decode(errors="replace")
        self.headers = {}

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file_started and not self.file_ended:
            self.data.append(data[start:end])
        else:
            self.other_bytes += end - start

    def on_part_end(self) -> None:
        if self.file_started:
            self.file_ended = True


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidUploadError("The body must be multipart/form-data with one `file` part.")
    return boundary


async def file_part(request: Request) -> tuple[str, AsyncIterator[bytes]]:
    """The filename of the body's `file` part and its bytes, as they arrive."""
    parts = _Parts()
    parser = MultipartParser(
        _boundary(request),
        {
            "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value,
            "on_header_end": parts.on_header_end,
            "on_headers_finished": parts.on_headers_finished,
            "on_part_data": parts.on_part_data,
            "on_part_end": parts.on_part_end,
        },
    )
    body = request.stream()

    async def feed() -> bool:
        """Parse the next chunk of the body; False at its end."""
        try:
            chunk = await anext(body)
        except StopAsyncIteration:
            return False
        try:
            parser.write(chunk)
        except ValueError as exc:  # python-multipart's parse errors
            raise InvalidUploadError(f"The multipart body is malformed: {exc}") from exc
        if parts.files > 1:
            raise InvalidUploadError("The body has more than one `file` part.")
        if parts.other_bytes > MAX_OVERHEAD_BYTES:
            raise InvalidUploadError("The body has parts other than `file`.")
        return True

    while not parts.file_started:
        if not await feed():
            raise InvalidUploadError("The body has no `file` part.")

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            while parts.data:
                yield parts.data.pop(0)
            if parts.file_ended:
                # The rest of the body (the closing boundary) is read and checked too.
                while await feed():
                    pass
                return
            if not await feed():
                raise InvalidUploadError("The body ends inside the `file` part.")

    return parts.filename, chunks()
