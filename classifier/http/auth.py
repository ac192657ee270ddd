"""The API key: `Authorization: Bearer <key>` on every path that is not open to all."""

from __future__ import annotations

import hashlib
import hmac

from .errors import send_error

# health probes, the docs and the schema BentoML's Python client reads first, the web page
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/", "/docs.json", "/schema.json", "/ui"})
OPEN_PREFIXES = ("/static_content/", "/ui/")


def is_open(path: str, open_paths: frozenset[str] = OPEN_PATHS) -> bool:
    return path in open_paths or path.startswith(OPEN_PREFIXES)


class ApiKeyAuth:
    """ASGI middleware: every path but `open_paths` needs `Authorization: Bearer <key>`, else 401.

    Keys are compared as SHA-256 digests with `hmac.compare_digest`: constant time, and the same
    length whatever the client sends. Neither the key nor what a client sent is ever logged.
    """

    def __init__(self, app, key: str, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.digest = hashlib.sha256(key.encode()).digest()
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or is_open(scope["path"], self.open_paths)
            or self._authorized(scope)
        ):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # none today; refused all the same
            return await send({"type": "websocket.close", "code": 1008})
        await send_error(
            send,
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            [(b"www-authenticate", b'Bearer realm="classifier"')],
        )

    def _authorized(self, scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        given = hashlib.sha256(token.strip()).digest()
        return hmac.compare_digest(given, self.digest) and scheme.lower() == b"bearer"
