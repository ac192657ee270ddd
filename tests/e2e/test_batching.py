"""Adaptive batching under concurrency: every caller gets its own answer, bad uploads included."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests import images


def batch_counts(metrics: str) -> tuple[float, float]:
    """(model calls with one request, all model calls) from the adaptive batch size histogram."""
    singles = total = 0.0
    for line in metrics.splitlines():
        if not line.startswith("bentoml_service_adaptive_batch_size_"):
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("bentoml_service_adaptive_batch_size_bucket") and 'le="1.0"' in line:
            singles += value
        elif line.startswith("bentoml_service_adaptive_batch_size_count"):
            total += value
    return singles, total


def test_concurrent_requests_each_get_their_own_answer(http):
    uploads = [images.jpeg(seed, (160 + 8 * seed, 120)) for seed in range(24)]
    bad = [b"", b"<html>nope</html>", images.HOSTILE["truncated_jpeg"][0]]
    # Alone, one at a time: the reference answers.
    reference = []
    for data in uploads:
        response = http.post("/predict", files={"image": ("a.jpg", data)}, data={"top_k": "5"})
        assert response.status_code == 200, response.text
        reference.append(response.json()["predictions"])
    before = batch_counts(http.get("/metrics").text)

    def send(data: bytes):
        response = http.post("/predict", files={"image": ("a.jpg", data)}, data={"top_k": "5"})
        return response.status_code, response.json()

    work = [*uploads, *bad] * 2
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        answers = list(pool.map(send, work))

    for data, (status, body) in zip(work, answers):
        if data in bad:
            assert 400 <= status < 500 and "error" in body, body
            continue
        assert status == 200, body
        expected = reference[uploads.index(data)]
        assert [p["label"] for p in body["predictions"]] == [p["label"] for p in expected]
        for got, want in zip(body["predictions"], expected):
            # bf16 kernels may round differently at another batch size; labels must not move
            assert abs(got["score"] - want["score"]) < 0.02, (got, want)

    singles, total = batch_counts(http.get("/metrics").text)
    batched = (total - before[1]) - (singles - before[0])
    assert batched > 0, "no two requests were ever batched together"


def test_distinct_images_get_distinct_answers(http):
    """Guards the test above: the model must tell these images apart for it to mean anything."""
    scores = set()
    for seed in range(6):
        response = http.post("/predict", files={"image": ("a.jpg", images.jpeg(seed))})
        scores.add(round(response.json()["predictions"][0]["score"], 6))
    assert len(scores) > 1


def test_sustained_concurrency_never_fails(http):
    """Hundreds of overlapping requests: BentoML's internal client renews its session every
    100 calls and drops the calls in flight on the old one; the service must retry them."""
    data = [images.jpeg(seed, (96, 96)) for seed in range(8)]

    def send(i: int) -> int:
        response = http.post("/predict", files={"image": ("a.jpg", data[i % len(data)])})
        return response.status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(send, range(320)))
    assert statuses.count(200) == len(statuses), sorted(set(statuses))
