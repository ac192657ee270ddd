"""Sending: batches under the service's limits, polite retries, and what is never sent twice.

The service is played by httpx.MockTransport handlers; tests/e2e/test_bulk.py sends to the real one.
"""

from __future__ import annotations

import asyncio
import json
import time
from email.utils import formatdate

import httpx
import pytest

from classifier.client.sending import (
    Limits,
    Refused,
    Sender,
    backoff,
    batches,
    retry_after,
    send_all,
)

PREDICTIONS = [{"label": "cat", "index": 0, "score": 0.75}]


@pytest.fixture
def files(tmp_path):
    paths = []
    for n in range(5):
        path = tmp_path / f"{n}.jpg"
        path.write_bytes(b"x" * (100 * (n + 1)))
        paths.append(path)
    return paths


def test_batches_keep_to_the_image_and_byte_limits(files):
    assert [len(b) for b in batches(files, 2, 10**6)] == [2, 2, 1]
    # 100..500 bytes plus 512 of multipart each: at most 1,500 bytes a request
    assert [[p.name for p in b] for b in batches(files, 5, 1500)] == [
        ["0.jpg", "1.jpg"], ["2.jpg"], ["3.jpg"], ["4.jpg"]
    ]  # fmt: skip


def test_retry_after_in_seconds_or_as_a_date():
    def response(value):
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after(response("3")) == 3
    assert 8 <= retry_after(response(formatdate(time.time() + 10, usegmt=True))) <= 10
    assert retry_after(response("soon")) is None
    assert retry_after(httpx.Response(503)) is None
    assert 2 <= backoff(0, 2) <= 3 and 0.5 <= backoff(0, None) <= 0.75
    assert backoff(20, None) <= 60 and backoff(0, 3600) <= 60  # capped, with the jitter


def test_concurrency_fills_two_model_batches_within_the_worker_limit():
    info = {"model": "m", "labels": ["a"], "max_batch_size": 16, "limits": {"max_concurrency": 3}}
    assert Limits.from_info(info).concurrency_for(8) == 3
    info["limits"]["max_concurrency"] = 64
    assert Limits.from_info(info).concurrency_for(8) == 4
    assert Limits.from_info(info).concurrency_for(1) == 32


def send(handler, paths, retries=3):
    waits: list[float] = []

    async def sleep(seconds):
        waits.append(seconds)

    async def main():
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            sender = Sender(client, top_k=1, retries=retries, sleep=sleep)
            return await sender.send(paths), sender.retried

    records, retried = asyncio.run(main())
    return records, retried, waits


def test_busy_answers_are_retried_after_the_time_asked(files):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "2"})
        results = [{"predictions": PREDICTIONS}, {"error": "not an image", "status": 415}]
        return httpx.Response(200, json={"model": "m", "results": results})

    records, retried, waits = send(handler, files[:2])
    assert calls == ["/predict_batch"] * 3 and retried == 2
    assert all(2 <= wait <= 3 for wait in waits)
    assert records[0].predictions[0].label == "cat" and records[0].status == 200
    assert (records[1].error, records[1].status) == ("not an image", 415)


def test_retries_are_bounded(files):
    records, retried, waits = send(
        lambda request: httpx.Response(503, json={"error": "busy"}), files[:1], retries=2
    )
    assert retried == 2 and len(waits) == 2
    assert records[0].error == "busy (3 tries)" and records[0].status == 503
    assert not records[0].final


def test_a_batch_refused_whole_is_sent_again_one_file_at_a_time(files):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/predict_batch":
            return httpx.Response(413, json={"error": "the request body is too large"})
        if b"x" * 300 in request.content:
            return httpx.Response(413, json={"error": "the request body is too large"})
        return httpx.Response(200, json={"model": "m", "predictions": PREDICTIONS})

    records, _, _ = send(handler, files[:3])
    assert seen == ["/predict_batch", "/predict", "/predict", "/predict"]
    assert [r.status for r in records] == [200, 200, 413]


def test_an_answered_file_is_never_sent_again(files):
    """A 500 is the service's answer for the whole batch: recorded (for a later --resume), not
    retried, and not split into single files either."""
    calls = []

    def handler(request):
        calls.append(request.url.path)
        return httpx.Response(500, json={"error": "internal error"})

    records, retried, _ = send(handler, files[:2])
    assert calls == ["/predict_batch"] and retried == 0
    assert [(r.status, r.final) for r in records] == [(500, False), (500, False)]


def test_a_page_that_is_not_the_service_s_is_no_answer(files):
    records, _, _ = send(lambda request: httpx.Response(404, text="<html>nginx</html>"), files[:2])
    assert [r.status for r in records] == [404, 404] and not records[0].final
    records, _, _ = send(lambda request: httpx.Response(200, text="<html>portal</html>"), files[:1])
    assert "not the service's answer" in records[0].error and not records[0].final


def run_all(handler, groups, concurrency):
    async def main():
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            sender = Sender(client, top_k=None, retries=1)
            written = []
            return await send_all(groups, sender, concurrency, written.extend), written

    return asyncio.run(main())


def test_a_refusal_stops_the_whole_run(files):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(401, json={"error": "this API needs a valid API key"})

    run, written = run_all(handler, [[path] for path in files], concurrency=2)
    assert run.refused.startswith("401") and written == []
    assert len(calls) <= 2  # at most the one each worker had in flight: 5 files, none sent after


def test_a_stop_while_waiting_to_retry_leaves_the_files_unanswered(files):
    async def main():
        busy = httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "30"})
        transport = httpx.MockTransport(lambda request: busy)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            sender = Sender(client, top_k=None)
            task = asyncio.ensure_future(sender.send(files[:2]))
            await asyncio.sleep(0.2)
            sender.stopping.set()
            return await asyncio.wait_for(task, 2)

    assert asyncio.run(main()) == []  # nothing recorded: --resume sends them


def test_a_wrong_api_key_stops_everything(files):
    with pytest.raises(Refused, match="401"):
        send(lambda request: httpx.Response(401, json={"error": "a valid API key"}), files[:2])


def test_top_k_goes_in_the_form(files):
    def handler(request):
        assert b'name="top_k"' in request.content and b'name="image"' in request.content
        return httpx.Response(200, json={"model": "m", "predictions": PREDICTIONS})

    records, _, _ = send(handler, files[:1])
    assert json.loads(records[0].model_dump_json())["predictions"][0]["score"] == 0.75
