"""Graceful shutdown of the real server: SIGTERM with requests in flight."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from tests import images
from tests.e2e.conftest import serve, slow_upload

IN_FLIGHT = 6  # uploads of 8 s each: all in flight at SIGTERM, for long


def test_sigterm_answers_every_accepted_request_refuses_new_ones_and_exits(stored_model, tmp_path):
    env = {"CLASSIFIER_MODEL_TAG": str(stored_model.tag)}
    server = serve("service:ImageClassifier", env, tmp_path / "serve.log")
    try:
        server.wait_ready()
        answers: list[httpx.Response | Exception] = []

        def send(seed: int) -> None:
            try:
                upload = slow_upload(images.jpeg(seed))
                answers.append(httpx.post(f"{server.url}/predict", timeout=60, **upload))
            except httpx.HTTPError as error:
                answers.append(error)

        clients = [threading.Thread(target=send, args=(i,)) for i in range(IN_FLIGHT)]
        for client in clients:
            client.start()
        time.sleep(1.0)  # every upload has started and none has finished
        assert not answers, "the requests finished before the test could stop the server"
        server.process.send_signal(signal.SIGTERM)  # what `docker stop` and Kubernetes send
        stopped = time.perf_counter()

        time.sleep(1.0)  # the signal has gone from the supervisor to the worker
        started = time.perf_counter()
        try:
            late = httpx.get(f"{server.url}/readyz", timeout=10)
            refused = late.status_code == 503
        except httpx.TransportError:  # connection refused or reset: never served
            refused = True
        refused_after = time.perf_counter() - started

        for client in clients:
            client.join(timeout=60)
        exit_code = server.process.wait(timeout=60)
        exited_after = time.perf_counter() - stopped
    finally:
        server.stop()

    log = server.log.read_text()
    assert len(answers) == IN_FLIGHT
    for answer in answers:
        assert isinstance(answer, httpx.Response), f"an accepted request was dropped: {answer!r}"
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"]
    assert refused, "a request sent after SIGTERM was served"
    assert refused_after < 2, f"a new request waited {refused_after:.1f} s instead of being refused"
    assert exit_code == 0, log[-3000:]
    assert exited_after < 30, f"took {exited_after:.1f} s to exit"
    assert "Traceback" not in log, log[-3000:]
