"""Server-Timing: each phase in milliseconds, the slowest image's for a batch."""

from __future__ import annotations

from classifier.http.timing import Timing


def test_phases_in_milliseconds_the_slowest_one_kept():
    headers: dict[str, str] = {}
    timing = Timing(headers)
    timing.add("prepare", 0.0123)
    timing.add("queue", 0.002)
    timing.add("prepare", 0.005)  # a faster image of the same batch
    assert headers["Server-Timing"] == "prepare;dur=12.3, queue;dur=2.0"
