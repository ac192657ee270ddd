"""A base for middlewares that rewrite some JSON responses of the app they wrap."""

from __future__ import annotations

import json


class RewriteJSON:
    """ASGI middleware base: responses that `holds` picks are buffered and sent on as the JSON
    that `rewrite` makes of their body, with the same status and headers; others pass through."""

    def __init__(self, app) -> None:
        self.app = app

    def applies(self, scope) -> bool:
        return True

    def holds(self, start: dict) -> bool:
        raise NotImplementedError

    def rewrite(self, body: bytes) -> dict:
        raise NotImplementedError

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.applies(scope):
            return await self.app(scope, receive, send)
        held = None
        chunks: list[bytes] = []

        async def rewriting_send(message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and self.holds(message):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                content = json.dumps(self.rewrite(b"".join(chunks))).encode()
                headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(content)).encode()))
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, rewriting_send)
