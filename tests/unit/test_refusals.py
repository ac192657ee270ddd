"""The service's refusals to start, as function calls: bad settings (at import of service.py) and
a damaged model (its deployment check). One of each also stops the real `bentoml serve`
(tests/e2e/test_security.py, tests/e2e/test_model_integrity.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from classifier.artifact import WEIGHTS_FILE, save_model
from classifier.settings import get_settings, settings_and_key_or_exit
from classifier.stored_model import check_stored_model
from classifier.testing.models import random_model
from tests.e2e.conftest import API_KEY as KEY

BAD_SETTINGS = [
    ({"CLASSIFIER_API_KEY_FILE": "/nonexistent/api-key"}, "cannot read"),
    ({"CLASSIFIER_API_KEY": KEY, "CLASSIFIER_API_KEY_FILE": "/x"}, "not both"),
    ({"CLASSIFIER_METRICS_REQUIRE_KEY": "true"}, "needs CLASSIFIER_API_KEY"),
    ({"CLASSIFIER_MAX_CONCURRENCY": "0"}, "max_concurrency"),
]
DAMAGES = [
    ("corrupt", ["SHA-256", "corrupt or was replaced"]),
    ("missing", ["cannot read"]),
    ("relabelled", ["do not fit a resnet50 with 2 labels", "last layer of 5 outputs"]),
]


def refusal(action) -> str:
    """The message a refusal to start ends the process with."""
    with pytest.raises(SystemExit) as refused:
        action()
    return str(refused.value.code)


@pytest.mark.parametrize(("settings", "words"), BAD_SETTINGS)
def test_bad_settings_are_refused_with_a_clear_message(monkeypatch, settings, words):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        message = refusal(settings_and_key_or_exit)
    finally:
        get_settings.cache_clear()
    assert message.startswith("ImageClassifier refuses to start") and words in message, message
    assert KEY[:6] not in message, "a refused setting's value is never echoed: it may be the key"


def damaged_model(how: str) -> str:
    """A model saved in the session's store, then damaged; its tag."""
    model, card = random_model(seed=5)
    stored = save_model(model, card)
    weights = Path(stored.path_of(WEIGHTS_FILE))
    if how == "corrupt":
        data = bytearray(weights.read_bytes())
        data[len(data) // 3] ^= 0x01  # one bit
        weights.write_bytes(bytes(data))
    elif how == "relabelled":  # the hash vouches for the weights, not for the card's labels
        info = Path(stored.path) / "model.yaml"
        document = yaml.safe_load(info.read_text())
        document["metadata"]["labels"] = ["cat", "dog"]
        info.write_text(yaml.safe_dump(document))
    else:
        weights.unlink()
    return str(stored.tag)


@pytest.mark.parametrize(("how", "words"), DAMAGES)
def test_a_damaged_model_is_refused_with_one_paragraph(bentoml_home, how, words):
    tag = damaged_model(how)
    message = refusal(lambda: check_stored_model(tag))
    assert "\n" not in message and message.startswith("ImageClassifier refuses to start")
    assert tag in message and "python -m train" in message
    for word in words:
        assert word in message, message
