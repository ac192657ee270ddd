"""multipart/form-data parsed in memory, in one pass over a body that has arrived in full."""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class MalformedForm(ValueError):
    """The body is not the multipart form its Content-Type announces."""


class TooManyFiles(MalformedForm):
    """More files than the form allows."""


class TooManyFields(MalformedForm):
    """More text fields than the form allows."""


@dataclass
class Part:
    name: str
    filename: str | None  # None: a text field
    data: bytes


def parse_form(body: bytes, content_type: str, *, max_files: int, max_fields: int) -> list[Part]:
    """The parts of a multipart/form-data `body`, in order.

    Starlette's parser spools each file to a temporary file (to disk beyond 1 MB, one thread hop
    per chunk) and BentoML copies it again to a file of its own; the body is in memory already
    (admission received it in full and bounded its size), so the parts are slices of it.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedForm("the Content-Type names no boundary")
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    header_field = header_value = b""
    chunks: list[bytes] = []
    ended = False

    def on_part_begin() -> None:
        headers.clear()
        chunks.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        nonlocal header_field
        header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        nonlocal header_value
        header_value += data[start:end]

    def on_header_end() -> None:
        nonlocal header_field, header_value
        headers[header_field.lower()] = header_value
        header_field = header_value = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def on_part_end() -> None:
        disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedForm("a part has no Content-Disposition: form-data; name=...")
        filename = options.get(b"filename")
        part = Part(
            name=options[b"name"].decode("utf-8", "replace"),
            filename=None if filename is None else filename.decode("utf-8", "replace"),
            data=b"".join(chunks),
        )
        parts.append(part)
        files = sum(part.filename is not None for part in parts)
        if files > max_files:
            raise TooManyFiles(f"too many files: the limit is {max_files}")
        if len(parts) - files > max_fields:
            raise TooManyFields(f"too many fields: the limit is {max_fields}")

    def on_end() -> None:
        nonlocal ended
        ended = True

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_end": on_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise MalformedForm(str(error)) from None
    if not ended:
        raise MalformedForm("the body ends before the form's closing boundary")
    return parts
