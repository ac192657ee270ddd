"""Admission to the APIs: bodies received in full under a deadline, then a bounded number of
requests worked on at once; the rest refused at once, politely."""

from __future__ import annotations

import asyncio

from .errors import send_error

RETRY_AFTER = (b"retry-after", b"1")  # seconds
CLOSE = (b"connection", b"close")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Admission:
    """ASGI middleware for the API paths. A request is received in full before it counts as work.

    - At most `max_receiving` bodies arrive at once; beyond that, 503 with Retry-After.
    - A body must arrive within `body_timeout_s`, plus one second for every `body_min_rate`
      bytes received (Apache's mod_reqtimeout rule), else 408: a client that trickles its
      upload holds a receiving place, briefly, and never a place among the requests worked on.
    - Bodies over `max_body_bytes` get 413, declared or streamed.
    - At most `max_concurrency` received requests are worked on at once; more get 503 with
      Retry-After before any work is done on them (at once if the limit is reached when
      they arrive), in milliseconds instead of a timeout.

    A request gives its working place back as its last response bytes are sent, not when the app
    returns: the client may already be sending its next request while the app cleans up
    (uvicorn starts it on a kept-alive connection as soon as the response is complete), and that
    request must find the place free. 503s for the working limit keep the connection; the other
    refusals close it, since reading on would defeat them.
    """

    def __init__(
        self,
        app,
        *,
        paths: frozenset[str],
        max_concurrency: int,
        max_receiving: int,
        max_body_bytes: int,
        body_timeout_s: float,
        body_min_rate: int,
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_concurrency = max_concurrency
        self.max_receiving = max_receiving
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.body_min_rate = body_min_rate
        self.working = 0  # one event loop per worker process: no lock needed
        self.receiving = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return await send_error(send, 413, self._too_large(), [CLOSE])
        if self.working >= self.max_concurrency:
            return await self._busy(send)  # at once, before its body arrives
        if self.receiving >= self.max_receiving:
            busy = f"the service is receiving its limit of {self.max_receiving} uploads"
            return await send_error(send, 503, f"{busy}; retry shortly", [RETRY_AFTER, CLOSE])
        self.receiving += 1
        try:
            body = await self._receive_body(receive)
        except Refused as refusal:
            return await send_error(send, refusal.status, refusal.message, [CLOSE])
        finally:
            self.receiving -= 1
        if body is None:
            return  # the client is gone
        if self.working >= self.max_concurrency:
            return await self._busy(send)
        await self._work(scope, body, receive, send)

    async def _busy(self, send) -> None:
        # The connection is kept: uvicorn's parser drops whatever of the body is still to come,
        # far more cheaply than reading it here, and the client reads its 503 after sending,
        # where closing with unread data would have the kernel reset the connection instead.
        busy = f"the service is handling its limit of {self.max_concurrency} requests"
        await send_error(send, 503, f"{busy}; retry shortly", [RETRY_AFTER])

    async def _receive_body(self, receive) -> bytes | None:
        """The whole body, or None if the client left; raises Refused when it is too large or
        too slow."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout_at(started + self.body_timeout_s) as deadline:
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_body_bytes:
                        raise Refused(413, self._too_large())
                    chunks.append(chunk)
                    if not message.get("more_body"):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    allowed = self.body_timeout_s + received / self.body_min_rate
                    deadline.reschedule(started + allowed)
        except TimeoutError:
            raise Refused(
                408,
                f"the request body did not arrive in time: {received} bytes in "
                f"{loop.time() - started:.0f} s; the service waits {self.body_timeout_s:g} s plus "
                f"1 s for every {self.body_min_rate} bytes received",
            ) from None

    async def _work(self, scope, body: bytes, receive, send) -> None:
        self.working += 1
        released = delivered = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.working -= 1

        async def replay_body():
            nonlocal delivered
            if delivered:
                return await receive()  # waits for the client to disconnect, as ASGI says
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def releasing_send(message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                release()  # before the last bytes leave: the client's next request may follow
            await send(message)

        try:
            await self.app(scope, replay_body, releasing_send)
        finally:
            release()

    def _too_large(self) -> str:
        return f"the request body is larger than the limit of {self.max_body_bytes} bytes"
