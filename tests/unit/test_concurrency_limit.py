"""The concurrency limit's slots: taken by a request, given back as its response is sent."""

from __future__ import annotations

import asyncio

from service import ConcurrencyLimit

SCOPE = {"type": "http", "path": "/predict", "method": "POST", "headers": []}


class CleansUpAfterAnswering:
    """An app that answers at once, then keeps working (closing upload files, metrics) until
    `cleaned` is set, as BentoML's request handling does; `fail` makes it raise instead."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()
        self.cleaned = asyncio.Event()
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        if scope.get("fail"):
            raise RuntimeError("the app failed before answering")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        if self.calls == 1:
            self.answered.set()
            await self.cleaned.wait()


async def call(app, scope=SCOPE) -> int:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"]


def test_the_next_request_finds_the_slot_of_an_answered_one_free():
    async def scenario():
        app = CleansUpAfterAnswering()
        limit = ConcurrencyLimit(app, limit=1, paths=frozenset({"/predict"}), max_bytes=1024)
        first = asyncio.create_task(call(limit))
        await app.answered.wait()  # answered, still cleaning up
        second = await call(limit)
        app.cleaned.set()
        assert await first == 200
        return second, limit.active

    assert asyncio.run(scenario()) == (200, 0)


def test_a_request_still_being_worked_on_holds_its_slot():
    async def scenario():
        started, finish = asyncio.Event(), asyncio.Event()

        async def slow(scope, receive, send):
            started.set()
            await finish.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        limit = ConcurrencyLimit(slow, limit=1, paths=frozenset({"/predict"}), max_bytes=1024)
        first = asyncio.create_task(call(limit))
        await started.wait()
        refused = await call(limit)
        finish.set()
        return refused, await first, limit.active

    assert asyncio.run(scenario()) == (503, 200, 0)


def test_an_app_that_fails_gives_its_slot_back():
    async def scenario():
        limit = ConcurrencyLimit(
            CleansUpAfterAnswering(), limit=1, paths=frozenset({"/predict"}), max_bytes=1024
        )
        try:
            await call(limit, {**SCOPE, "fail": True})
        except RuntimeError:
            pass
        return limit.active

    assert asyncio.run(scenario()) == 0
