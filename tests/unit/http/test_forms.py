"""Strict parsing: the documented media type and fields only, files where files belong."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from classifier.http.forms import StrictForm, StrictJSON
from tests.unit.http.asgi import client


class Upload(StrictForm):
    max_files: ClassVar[int] = 2

    image: Path
    note: str = ""


class Album(StrictForm):
    max_files: ClassVar[int] = 4

    images: list[Path]


class Message(StrictJSON):
    text: str


def text(value):
    if isinstance(value, list):
        return [text(item) for item in value]
    return value.decode() if isinstance(value, bytes) else value


def parse(spec, **request):
    async def endpoint(request):
        try:
            parsed = await spec.from_http_request(request, None)
        except BentoMLException as error:
            return JSONResponse({"error": str(error)}, status_code=error.error_code)
        except ValidationError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        # each file as its bytes, in memory: no temporary file
        return JSONResponse({name: text(getattr(parsed, name)) for name in spec.model_fields})

    async def scenario():
        app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
        async with client(app) as http:
            return await http.post("/", **request)

    return asyncio.run(scenario())


def test_a_form_with_a_file_and_text():
    response = parse(Upload, files={"image": ("a.jpg", b"pixels")}, data={"note": "hi"})
    assert response.status_code == 200, response.text
    assert response.json() == {"image": "pixels", "note": "hi"}


def test_text_as_bentomls_client_sends_it_in_json_and_as_curl_sends_it():
    for sent, parsed in [('"hi"', "hi"), ("hi", "hi"), ('"a \\"b\\""', 'a "b"'), ("1", "1")]:
        response = parse(Upload, files={"image": ("a.jpg", b"p")}, data={"note": sent})
        assert response.json()["note"] == parsed, sent
    unset = parse(Upload, files={"image": ("a.jpg", b"p")}, data={"note": "null"})
    assert unset.json()["note"] == ""  # the default


def test_text_where_a_file_belongs_and_a_file_where_text_belongs_are_400():
    text = parse(Upload, files={"note": ("n.txt", b"x")}, data={"image": "http://x/a.jpg"})
    assert text.status_code == 400
    assert text.json()["error"] == "field 'image' must be a file upload"
    file = parse(Upload, files={"image": ("a.jpg", b"p"), "note": ("n.txt", b"x")})
    assert file.status_code == 400
    assert file.json()["error"] == "field 'note' must be text, not a file"


def test_every_file_of_a_list_field_in_order():
    files = [("images", (f"{i}.jpg", f"image {i}".encode())) for i in range(2)]
    response = parse(Album, files=files)
    assert response.status_code == 200, response.text
    assert response.json() == {"images": ["image 0", "image 1"]}


def test_a_truncated_or_garbled_body_is_400():
    headers = {"content-type": "multipart/form-data; boundary=xx"}
    body = b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nab'
    truncated = parse(Upload, content=body, headers=headers)
    assert truncated.status_code == 400
    assert truncated.json()["error"] == (
        "malformed multipart body: the body ends before the form's closing boundary"
    )
    garbled = parse(Upload, content=b"garbage", headers=headers)
    assert garbled.status_code == 400
    assert garbled.json()["error"].startswith("malformed multipart body: ")


def test_too_many_files_is_413():
    files = [("image", (f"{i}.jpg", b"p")) for i in range(3)]
    response = parse(Upload, files=files)
    assert response.status_code == 413
    assert response.json()["error"] == "too many images: the limit is 2 per request"


def test_the_wrong_media_type_is_415():
    response = parse(Upload, json={"image": "x"})
    assert response.status_code == 415
    assert response.json()["error"] == "send multipart/form-data, not application/json"
    response = parse(Message, content=b"text=hi", headers={"content-type": "text/plain"})
    assert response.json()["error"] == "send application/json, not text/plain"


def test_json_is_validated_by_its_model():
    assert parse(Message, json={"text": "hi"}).json() == {"text": "hi"}
