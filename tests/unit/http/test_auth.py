"""The API key: 401 without it, in one shape; open paths stay open."""

from __future__ import annotations

import asyncio

import pytest

from classifier.http.auth import ApiKeyAuth
from tests.unit.http.asgi import client, echo

KEY = "s3cret-key"


def get(path: str, headers: dict | None = None):
    async def scenario():
        async with client(ApiKeyAuth(echo, key=KEY)) as http:
            return await http.post(path, headers=headers or {})

    return asyncio.run(scenario())


def test_the_right_key_lets_a_request_in():
    response = get("/predict", {"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": KEY},
    ],
)
def test_a_missing_or_wrong_key_gets_401_with_the_scheme(headers):
    response = get("/predict", headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="classifier"'
    assert response.json() == {
        "error": "missing or wrong API key: send 'Authorization: Bearer <key>'"
    }


@pytest.mark.parametrize("path", ["/readyz", "/livez", "/docs.json", "/schema.json", "/ui/app.js"])
def test_probes_docs_and_the_page_need_no_key(path):
    assert get(path).status_code == 200
