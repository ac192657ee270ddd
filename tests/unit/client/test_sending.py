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

from classifier.client.sending import Limits, Refused, Sender, backoff, batches, retry_after

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
    assert backoff(20, None) <= 90  # capped


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
    """A 500 is the service's answer: recorded (for a later --resume), not retried."""
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(500, json={"error": "internal error"})

    records, retried, _ = send(handler, files[:1])
    assert len(calls) == 1 and retried == 0 and records[0].status == 500


def test_a_wrong_api_key_stops_everything(files):
    with pytest.raises(Refused, match="401"):
        send(lambda request: httpx.Response(401, json={"error": "a valid API key"}), files[:2])


def test_top_k_goes_in_the_form(files):
    def handler(request):
        assert b'name="top_k"' in request.content and b'name="image"' in request.content
        return httpx.Response(200, json={"model": "m", "predictions": PREDICTIONS})

    records, _, _ = send(handler, files[:1])
    assert json.loads(records[0].model_dump_json())["predictions"][0]["score"] == 0.75
