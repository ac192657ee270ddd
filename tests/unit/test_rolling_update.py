"""The rolling update's verdict: failed requests and the model switch, read from the answers."""

from __future__ import annotations

from classifier.testing.rolling_update import Answer, summary

OLD, NEW = "resnet50:old", "resnet50:new"
STEPS = [
    {"replica": 0, "new_started_s": 10.0, "sigterm_s": 20.0, "old_stop_s": 2.0},
    {"replica": 1, "new_started_s": 22.0, "sigterm_s": 30.0, "old_stop_s": 2.0},
]


def verdict(*rows):
    """The summary of answers given as (sent, seconds, status, model)."""
    return summary([Answer(*row) for row in rows], STEPS, OLD, NEW)


def test_a_clean_update_switches_models_and_fails_nothing():
    result = verdict(
        (1.0, 0.2, "200", OLD),
        (21.0, 0.2, "200", OLD),
        (21.5, 0.2, "200", NEW),
        (33.0, 0.2, "200", NEW),
    )
    assert result["failed"] == 0 and result["requests"] == 4
    assert result["models"] == {OLD: 2, NEW: 2}
    assert result["first_new_answer_s"] == 21.7 and result["last_old_answer_s"] == 21.2
    assert result["old_answers_after_last_stop"] == 0
    assert result["before"]["answers"] == 1 and result["after"]["answers"] == 1


def test_dropped_requests_and_late_old_answers_are_counted():
    result = verdict(
        (20.5, 0.01, "RemoteProtocolError", None),
        (25.0, 0.2, "502", None),
        (33.0, 0.2, "200", OLD),
    )
    assert result["failed"] == 2 and result["statuses"]["RemoteProtocolError"] == 1
    assert result["old_answers_after_last_stop"] == 1 and result["first_new_answer_s"] is None
