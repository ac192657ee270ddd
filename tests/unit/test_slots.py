"""Slots: a fixed number of places, a polite 503 beyond them, and places given back."""

from __future__ import annotations

import pytest

from classifier.errors import ClientError
from classifier.slots import Slots


def test_beyond_the_limit_a_503_with_retry_after_and_places_come_back():
    slots = Slots(2, "explanations", retry_after=3)
    with slots.take(), slots.take():
        with pytest.raises(ClientError) as refused:
            with slots.take():
                pass
    assert refused.value.status == 503 and refused.value.retry_after == 3
    assert "limit of 2 explanations" in refused.value.message
    with pytest.raises(ValueError), slots.take():
        raise ValueError("a failed request gives its place back too")
    assert slots.taken == 0
