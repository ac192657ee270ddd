"""Admission: bodies received in full under a deadline, then at most N requests worked on."""

from __future__ import annotations

import asyncio

import httpx

from classifier.http.admission import Admission
from tests.unit.http.asgi import client, echo, trickle

PATHS = frozenset({"/predict"})


def admission(app=echo, **limits) -> Admission:
    options = {
        "paths": PATHS,
        "max_concurrency": 1,
        "max_receiving": 4,
        "max_body_bytes": 1024,
        "body_timeout_s": 5,
        "body_min_rate": 1000,
        **limits,
    }
    return Admission(app, **options)


class CleansUpAfterAnswering:
    """An app that answers at once, then keeps working (closing upload files, metrics) until
    `cleaned` is set, as BentoML's request handling does; `/fail` makes it raise instead."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()
        self.cleaned = asyncio.Event()
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        if scope["query_string"] == b"fail":
            raise RuntimeError("the app failed before answering")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        if self.calls == 1:
            self.answered.set()
            await self.cleaned.wait()


def test_the_next_request_finds_the_slot_of_an_answered_one_free():
    async def scenario():
        app = CleansUpAfterAnswering()
        limit = admission(app)
        async with client(limit) as http:
            first = asyncio.create_task(http.post("/predict", content=b"x"))
            await app.answered.wait()  # answered, still cleaning up
            second = await http.post("/predict", content=b"x")
            app.cleaned.set()
            assert (await first).status_code == 200
        return second.status_code, limit.working

    assert asyncio.run(scenario()) == (200, 0)


def refused_while_one_is_worked_on(content) -> tuple[httpx.Response, int, int]:
    """With one working place, held by a request the app has not answered yet: the answer to
    another request with `content`, the first one's status, and the places taken afterwards."""

    async def scenario():
        started, finish = asyncio.Event(), asyncio.Event()

        async def slow(scope, receive, send):
            started.set()
            await finish.wait()
            await echo(scope, receive, send)

        limit = admission(slow)
        async with client(limit) as http:
            first = asyncio.create_task(http.post("/predict", content=b"x"))
            await started.wait()
            refused = await http.post("/predict", content=content)
            finish.set()
            return refused, (await first).status_code, limit.working

    return asyncio.run(scenario())


def test_a_request_still_being_worked_on_holds_its_slot():
    refused, first, working = refused_while_one_is_worked_on(b"x")
    assert (refused.status_code, first, working) == (503, 200, 0)
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "the service is handling its limit of 1 requests; retry shortly"
    }


def test_when_every_slot_is_taken_a_request_is_refused_before_its_body_is_read():
    sent = []

    async def body():
        for chunk in (b"a", b"b"):
            sent.append(chunk)
            yield chunk

    refused, _, _ = refused_while_one_is_worked_on(body())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "connection" not in refused.headers, "kept: uvicorn drops the rest of the body"
    assert sent == []


def test_an_app_that_fails_gives_its_slot_back():
    async def scenario():
        limit = admission(CleansUpAfterAnswering())
        transport = httpx.ASGITransport(app=limit, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            await http.post("/predict?fail", content=b"x")
        return limit.working

    assert asyncio.run(scenario()) == 0


def test_the_app_reads_the_whole_body_at_once_after_it_arrived():
    async def scenario():
        async with client(admission()) as http:
            return await http.post("/predict", content=trickle(b"0123456789", 0.01))

    response = asyncio.run(scenario())
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 10


def test_a_slow_sender_does_not_take_the_place_of_a_request_being_worked_on():
    async def scenario():
        async with client(admission(max_concurrency=1)) as http:
            slow = asyncio.create_task(http.post("/predict", content=trickle(b"x" * 20, 0.05)))
            await asyncio.sleep(0.1)  # the slow one is receiving
            fast = [await http.post("/predict", content=b"y" * 100) for _ in range(3)]
            return [response.status_code for response in fast], (await slow).status_code

    assert asyncio.run(scenario()) == ([200, 200, 200], 200)


def test_a_body_that_arrives_too_slowly_gets_408_and_the_app_never_sees_it():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await echo(scope, receive, send)

    async def scenario():
        limit = admission(app, body_timeout_s=0.2, body_min_rate=100)
        async with client(limit) as http:
            response = await http.post("/predict", content=trickle(b"z" * 30, 0.05))
        return response, limit.receiving

    response, receiving = asyncio.run(scenario())
    assert response.status_code == 408, response.text
    assert response.headers["connection"] == "close"
    assert response.json()["error"].startswith("the request body did not arrive in time: ")
    assert seen == [] and receiving == 0


def test_the_deadline_grows_with_what_has_arrived():
    # 0.2 s, plus 1 s for every 25 bytes: 30 bytes at 50 bytes/s take 0.6 s, and arrive in time
    async def scenario():
        limit = admission(body_timeout_s=0.2, body_min_rate=25)
        async with client(limit) as http:
            return await http.post("/predict", content=trickle(b"z" * 30, 0.02))

    assert asyncio.run(scenario()).status_code == 200


def test_receiving_is_bounded_separately_with_503_and_retry_after():
    async def scenario():
        limit = admission(max_receiving=2, max_concurrency=10)
        async with client(limit) as http:
            slow = [
                asyncio.create_task(http.post("/predict", content=trickle(b"s" * 10, 0.03)))
                for _ in range(2)
            ]
            await asyncio.sleep(0.05)
            refused = await http.post("/predict", content=b"x")
            done = [(await task).status_code for task in slow]
            after = await http.post("/predict", content=b"x")
        return refused, done, after.status_code

    refused, done, after = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "the service is receiving its limit of 2 uploads; retry shortly"
    }
    assert done == [200, 200] and after == 200


def test_bodies_over_the_limit_get_413_declared_or_streamed():
    async def chunks():
        for _ in range(3):
            yield b"b" * 500

    async def scenario():
        async with client(admission(max_body_bytes=1024)) as http:
            declared = await http.post("/predict", content=b"a" * 1025)
            streamed = await http.post("/predict", content=chunks())
            at_limit = await http.post("/predict", content=b"a" * 1024)
        return declared, streamed, at_limit

    declared, streamed, at_limit = asyncio.run(scenario())
    limit = {"error": "the request body is larger than the limit of 1024 bytes"}
    assert declared.status_code == streamed.status_code == 413
    assert declared.json() == streamed.json() == limit
    assert at_limit.status_code == 200


def test_other_paths_pass_untouched():
    async def scenario():
        limit = admission(max_concurrency=1, max_body_bytes=1024)
        async with client(limit) as http:
            return await http.post("/readyz", content=b"a" * 2000)

    response = asyncio.run(scenario())
    assert response.status_code == 200 and response.json()["received"] == 2000
