"""The compiled model under the real server: made in the background while the eager model
answers, from an empty cache and from a warm one; the same answers as the eager model, nothing
recompiled by any mix of batch sizes, and the eager model when compiling fails."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import images
from tests.e2e.conftest import SERVER_ENV, serve

PHOTOS = {seed: images.jpeg(seed) for seed in range(8)}
# fp32 on both sides, so that the compiled answers must match the eager ones closely; a largest
# batch of 2 keeps compilation short (graphs for 1 and 2: each takes 15 to 20 s on a Zen 3 for the
# tests' demo-shaped model, 30 to 40 s with all sixteen blocks at work;
# padding to every compiled size is tests/unit/test_compilation.py's)
COMPILED = {"CLASSIFIER_PRECISION": "fp32", "CLASSIFIER_MAX_BATCH_SIZE": "2"}


@pytest.fixture(scope="module")
def eager_answers() -> dict[int, list[dict]]:
    """Each photo's predictions from the eager model, as the first test reads them from the
    server that answers eagerly while it compiles (a server start fewer than an eager one)."""
    return {}


def read_eager_answers(client: httpx.Client) -> dict[int, list[dict]]:
    """Each photo's predictions from a server whose model is eager from the first to the last."""
    assert client.get("/info").json()["compile"]["compiled"] is False
    answers = {seed: predict(client, seed) for seed in PHOTOS}
    assert client.get("/info").json()["compile"]["compiled"] is False
    return answers


def predict(client: httpx.Client, seed: int) -> list[dict]:
    response = client.post("/predict", files={"image": ("p.jpg", PHOTOS[seed], "image/jpeg")})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def predict_batch(client: httpx.Client, seeds: list[int]) -> list[list[dict]]:
    files = [("images", (f"{seed}.jpg", PHOTOS[seed], "image/jpeg")) for seed in seeds]
    response = client.post("/predict_batch", files=files)
    assert response.status_code == 200, response.text
    return [result["predictions"] for result in response.json()["results"]]


def assert_same_answer(got: list[dict], expected: list[dict]) -> None:
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    for mine, theirs in zip(got, expected):
        assert mine["score"] == pytest.approx(theirs["score"], abs=1e-4)


def serve_compiled(model, log: Path, **settings: str):
    """Ready: the eager model answers, and the compiled one is being made."""
    env = {**SERVER_ENV, **COMPILED, "CLASSIFIER_MODEL_TAG": str(model.tag), **settings}
    server = serve("service:ImageClassifier", {"CLASSIFIER_COMPILE": "auto", **env}, log)
    server.wait_ready()
    return server


def test_compiled_from_an_empty_then_a_warm_cache_answers_like_eager(
    stored_model, tmp_path, eager_answers
):
    cache = tmp_path / "compile-cache"
    server = serve_compiled(
        stored_model, tmp_path / "cold.log", CLASSIFIER_COMPILE_CACHE_DIR=str(cache)
    )
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            # ready before compiling is done: the eager model answers meanwhile
            early = client.get("/info").json()["compile"]
            assert early["compiling"] is True and early["compiled"] is False, early
            eager_answers.update(read_eager_answers(client))  # a graph takes 15 to 20 s
            server.wait_compiled()
            compiled = client.get("/info").json()["compile"]
            assert compiled["compiled"] is True and compiled["reason"] is None, compiled
            assert compiled["batch_sizes"] == [1, 2] and compiled["graphs"] == 2
            assert compiled["graphs_from_cache"] == 0 and compiled["cache_dir"] == str(cache)
            assert any(cache.rglob("*.py")), "no compiled code in the cache directory"

            # a random mix of batch sizes: single and batch requests, 1 to 6 at once
            rng = random.Random(0)
            with ThreadPoolExecutor(6) as pool:
                for _ in range(10):
                    requests = [rng.sample(list(PHOTOS), rng.randint(1, 4)) for _ in range(6)]
                    requests = requests[: rng.randint(1, 6)]
                    for seeds, answers in zip(
                        requests, pool.map(lambda seeds: predict_batch(client, seeds), requests)
                    ):
                        for seed, answer in zip(seeds, answers):
                            assert_same_answer(answer, eager_answers[seed])
            assert batch_sizes_seen(client.get("/metrics").text) > 1
            after = client.get("/info").json()["compile"]
            assert after["recompilations"] == 0 and after["graphs"] == 2, after
    finally:
        server.stop()

    server = serve_compiled(
        stored_model, tmp_path / "warm.log", CLASSIFIER_COMPILE_CACHE_DIR=str(cache)
    )
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            server.wait_compiled()
            warm = client.get("/info").json()["compile"]
            assert warm["compiled"] is True and warm["graphs_from_cache"] == 2, warm
            for seed in PHOTOS:
                assert_same_answer(predict(client, seed), eager_answers[seed])
            # explanations take gradients of the eager module beside the compiled graphs
            files = {"image": ("p.jpg", PHOTOS[0], "image/jpeg")}
            explained = client.post("/explain", files=files)
            assert explained.status_code == 200, explained.text
            assert_same_answer(explained.json()["predictions"], eager_answers[0])
            assert client.get("/info").json()["compile"]["recompilations"] == 0
    finally:
        server.stop()


def test_a_failed_compilation_serves_the_eager_model(
    stored_model, tmp_path, eager_answers, make_server
):
    if not eager_answers:  # run on its own, without the test above
        server = make_server(**COMPILED, CLASSIFIER_COMPILE="off")
        with httpx.Client(base_url=server.url, timeout=60) as client:
            eager_answers.update(read_eager_answers(client))
    server = serve_compiled(
        stored_model,
        tmp_path / "failed.log",
        CLASSIFIER_COMPILE="inductor",  # tries even without a compiler, and fails
        CLASSIFIER_COMPILE_CACHE_DIR=str(tmp_path / "empty-cache"),
        CXX="/nonexistent/c++",
    )
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            server.wait_compiled()
            compiled = client.get("/info").json()["compile"]
            assert compiled["compiled"] is False and compiled["batch_sizes"] == [], compiled
            assert "compiling failed" in compiled["reason"], compiled
            for seed in PHOTOS:
                assert_same_answer(predict(client, seed), eager_answers[seed])
    finally:
        server.stop()
    lines = [line for line in server.log.read_text().splitlines() if "eager model" in line]
    assert len(lines) == 1 and compiled["reason"] in lines[0], lines


def batch_sizes_seen(metrics: str) -> int:
    """How many distinct batch-size buckets of the batch histogram had model calls."""
    counts = []
    for line in metrics.splitlines():
        if line.startswith("classifier_batch_size_bucket"):
            counts.append(float(line.rsplit(" ", 1)[1]))
    # cumulative buckets: each rise is a bucket with calls in it
    return sum(1 for before, after in zip([0.0, *counts], counts) if after > before)
