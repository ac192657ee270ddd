"""Tiny ASGI apps to wrap the HTTP layer's middlewares around, and an httpx client for them."""

from __future__ import annotations

import asyncio
import json

import httpx


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def echo(scope, receive, send) -> None:
    """Answers 200 with the size of the body it read, and the path."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send_json(send, 200, {"received": size, "path": scope["path"]})


async def send_json(send, status: int, body, headers=()) -> None:
    content = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": content})


async def trickle(data: bytes, seconds_per_byte: float):
    """A request body sent one byte at a time."""
    for byte in data:
        await asyncio.sleep(seconds_per_byte)
        yield bytes([byte])
