"""Slow clients cannot take the service: 100 uploads trickling in at a byte a second, more than
CLASSIFIER_MAX_CONCURRENCY, while normal uploads keep being answered; each slow one gets 408."""

from __future__ import annotations

from classifier.testing.overload import photo_requests
from classifier.testing.slow_senders import measure_slow_senders
from tests import images

BODY_TIMEOUT_S = 10  # the default


def test_slow_senders_get_408_while_everyone_else_is_answered(server):
    requests = photo_requests(server.url, [images.jpeg(seed, (320, 240)) for seed in range(4)])
    result = measure_slow_senders(server.url, requests, senders=100, clients=4, seconds=6)
    print(result)
    assert result["statuses"] == {"200": result["requests"]}, "no 503, no timeout"
    assert result["requests"] >= 24 and result["wrong_answers"] == 0
    assert result["ms"]["p99"] < 2000
    assert result["slow_statuses"] == {"408": 100}
    assert result["slow_answered_after_s"]["min"] >= BODY_TIMEOUT_S
    assert server.process.poll() is None
