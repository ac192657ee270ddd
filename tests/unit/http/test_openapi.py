"""/docs.json lists every status the APIs answer, and the key's scheme when there is a key."""

from __future__ import annotations

import asyncio

from classifier.http.openapi import DocumentedErrors
from tests.unit.http.asgi import client, send_json

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
SPEC = {
    "paths": {
        "/predict": {
            "post": {"x-bentoml-name": "predict", "responses": {"400": {"content": ERROR}}}
        },
        "/readyz": {"get": {"responses": {}}},
    }
}


def document(path: str = "/docs.json", **options):
    async def app(scope, receive, send):
        await send_json(send, 200, SPEC)

    async def scenario():
        async with client(DocumentedErrors(app, **options)) as http:
            return await http.get(path)

    return asyncio.run(scenario())


def test_every_status_is_documented_with_the_error_shape():
    spec = document(statuses={408: "Too slow", 503: "Busy"}).json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert responses["408"] == {"description": "Too slow", "content": ERROR}
    assert responses["503"] == {"description": "Busy", "content": ERROR}
    assert "security" not in spec["paths"]["/predict"]["post"]


def test_keyed_paths_get_the_bearer_scheme():
    spec = document(statuses={}, needs_key=lambda path: path == "/predict").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}
    assert spec["paths"]["/predict"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in spec["paths"]["/readyz"]["get"]


def test_other_paths_are_untouched():
    assert document("/schema.json", statuses={408: "Too slow"}).json() == SPEC
