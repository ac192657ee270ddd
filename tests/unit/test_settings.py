"""Settings come from CLASSIFIER_* environment variables and are validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from classifier.settings import Settings


def test_defaults():
    settings = Settings()
    assert settings.model_tag == "resnet50:latest"
    assert settings.precision == "auto"
    assert settings.max_batch_size >= 2 and settings.max_latency_ms > 0


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("CLASSIFIER_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("CLASSIFIER_PRECISION", "fp32")
    monkeypatch.setenv("CLASSIFIER_MODEL_TAG", "resnet50:abc")
    settings = Settings()
    assert (settings.max_batch_size, settings.precision) == (8, "fp32")
    assert settings.model_tag == "resnet50:abc"


@pytest.mark.parametrize(
    "name, value",
    [
        ("CLASSIFIER_PRECISION", "fp8"),
        ("CLASSIFIER_MAX_BATCH_SIZE", "1"),
        ("CLASSIFIER_THREADS", "x"),
    ],
)
def test_invalid_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
