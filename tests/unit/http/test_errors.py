"""One error shape: BentoML's validation and client errors rewritten, everything else untouched."""

from __future__ import annotations

import asyncio

from classifier.http.errors import ReadableErrors
from tests.unit.http.asgi import client, send_json

VALIDATION = {
    "error": "1 validation error for PredictForm",
    "detail": [{"loc": ["top_k"], "msg": "Input should be greater than or equal to 1"}],
}


def answered(status: int, body, content_type=b"application/json"):
    async def app(scope, receive, send):
        if content_type is None:
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": body})
        else:
            await send_json(send, status, body)

    async def scenario():
        async with client(ReadableErrors(app)) as http:
            return await http.get("/predict")

    return asyncio.run(scenario())


def test_validation_errors_name_the_field():
    response = answered(400, VALIDATION)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid request: top_k: Input should be greater than or equal to 1"
    }
    assert int(response.headers["content-length"]) == len(response.content)


def test_bentoml_s_wrapped_client_errors_are_unwrapped():
    response = answered(415, [{"error": "send multipart/form-data, not text/plain"}])
    assert response.json() == {"error": "send multipart/form-data, not text/plain"}


def test_successes_and_server_errors_pass_through():
    assert answered(200, {"predictions": []}).json() == {"predictions": []}
    assert answered(500, {"error": "x", "detail": [1]}).json() == {"error": "x", "detail": [1]}
