"""The web page at /ui: its files, read once, served with a strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
from http import HTTPStatus
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads nothing from anywhere else and says so to the browser; it calls the APIs with
# the key the person enters, if any. Images: previews of the chosen files (blob:) and the
# heatmaps /explain answers with (data:).
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated with the ETag: a new release shows at once
}


def read_files(folder: Path = WEB_DIR) -> dict[str, tuple[bytes, str, str]]:
    """name: (body, media type, ETag) of each file of the page."""
    files = {}
    for file in folder.iterdir():
        if file.suffix in MEDIA_TYPES:
            body = file.read_bytes()
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            files[file.name] = (body, MEDIA_TYPES[file.suffix], etag)
    return files


def web_app(folder: Path = WEB_DIR) -> Starlette:
    """The page's files at / (index.html) and /<name>."""
    files = read_files(folder)

    def web_file(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in files:
            return JSONResponse({"error": f"no such file in the web page: {name}"}, status_code=404)
        body, media_type, etag = files[name]
        headers = {**HEADERS, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=HTTPStatus.NOT_MODIFIED, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    return Starlette(routes=[Route("/", web_file), Route("/{name}", web_file)])
