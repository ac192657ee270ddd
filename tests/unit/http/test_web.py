"""The page's files: served with their types, strict headers, ETags; nothing else."""

from __future__ import annotations

import asyncio

from classifier.http.web import web_app
from tests.unit.http.asgi import client


def get(path: str, headers: dict | None = None):
    async def scenario():
        async with client(web_app()) as http:
            return await http.get(path, headers=headers or {})

    return asyncio.run(scenario())


def test_the_page_and_its_files_with_their_types():
    page = get("/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert get("/app.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert get("/style.css").headers["content-type"] == "text/css; charset=utf-8"
    assert get("/favicon.svg").headers["content-type"] == "image/svg+xml"


def test_an_unchanged_file_is_revalidated_with_its_etag():
    etag = get("/app.js").headers["etag"]
    again = get("/app.js", {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


def test_anything_else_is_a_json_404():
    response = get("/../service.py")
    assert response.status_code == 404
    missing = get("/missing.js")
    assert missing.json() == {"error": "no such file in the web page: missing.js"}
