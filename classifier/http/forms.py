"""Strict request parsing: the media type the API documents, and only the fields it declares."""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import PurePath
from typing import ClassVar, get_origin

import bentoml
from bentoml.exceptions import BentoMLException

from .multipart import MalformedForm, TooManyFields, TooManyFiles, parse_form


def require_media_type(request, expected: str) -> None:
    got = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if got != expected:
        raise BentoMLException(
            f"send {expected}, not {got or 'a body without a Content-Type'}",
            error_code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )


class StrictForm(bentoml.IODescriptor):
    """multipart/form-data parsed strictly; subclasses declare the fields, `Path` for files.

    BentoML's own parser fetches a URL given in a file field as text (nothing may download at
    run time here) and answers 500 to a binary part in a field it does not expect. The API
    gets each file's bytes, not a path: BentoML would copy every upload to a temporary file for
    the API to read back. `max_files` bounds the files in one body.
    """

    max_files: ClassVar[int] = 16
    max_fields: ClassVar[int] = 16

    @classmethod
    async def from_http_request(cls, request, serde):
        require_media_type(request, "multipart/form-data")
        try:
            parts = parse_form(
                await request.body(),
                request.headers["content-type"],
                max_files=cls.max_files,
                max_fields=cls.max_fields,
            )
        except TooManyFiles:
            raise BentoMLException(
                f"too many images: the limit is {cls.max_files} per request",
                error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            ) from None
        except TooManyFields as error:
            raise BentoMLException(
                str(error), error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            ) from None
        except MalformedForm as error:
            raise BentoMLException(
                f"malformed multipart body: {error}", error_code=HTTPStatus.BAD_REQUEST
            ) from None
        texts: dict[str, str] = {}
        files: dict[str, list[bytes]] = {}
        for part in parts:
            if part.name not in cls.model_fields:
                continue
            if part.name in cls.multipart_fields:
                if part.filename is None:
                    raise BentoMLException(
                        f"field '{part.name}' must be a file upload",
                        error_code=HTTPStatus.BAD_REQUEST,
                    )
                files.setdefault(part.name, []).append(part.data)
            elif part.filename is not None:
                raise BentoMLException(
                    f"field '{part.name}' must be text, not a file",
                    error_code=HTTPStatus.BAD_REQUEST,
                )
            else:  # the last one counts
                value = form_text(part.data.decode("utf-8", "replace"))
                if value is None:
                    texts.pop(part.name, None)
                else:
                    texts[part.name] = value
        # Validated with a stand-in path for each file (BentoML's Path type writes no file for a
        # path), then each file's bytes take its place.
        many = {name: get_origin(cls.model_fields[name].annotation) is list for name in files}
        stand_ins = {
            name: [PurePath(name)] * len(data) if many[name] else PurePath(name)
            for name, data in files.items()
        }
        form = cls.model_validate({**texts, **stand_ins})
        for name, data in files.items():
            form.__dict__[name] = data if many[name] else data[0]
        return form


def form_text(value: str) -> str | None:
    """A text field as curl and browsers send it (star), or as BentoML's Python client does,
    in JSON ("star"; null for None, which leaves the field unset). Only quoted strings and null
    are decoded: a label such as 1, a fine-tuned model's folder name, stays text."""
    if value == "null":
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


class StrictJSON(bentoml.IODescriptor):
    """An application/json body, validated by pydantic and nothing else."""

    @classmethod
    async def from_http_request(cls, request, serde):
        require_media_type(request, "application/json")
        return cls.model_validate_json(await request.body() or b"{}")
