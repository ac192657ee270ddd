"""A corrupt or missing model stops `bentoml serve` with one clear message, not a crash loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from classifier.artifact import WEIGHTS_FILE, save_model
from classifier.testing.models import random_model
from tests.e2e.conftest import serve_until_exit


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


@pytest.mark.parametrize(
    "how, words",
    [
        ("corrupt", ["SHA-256", "corrupt or was replaced"]),
        ("missing", ["cannot read"]),
        ("relabelled", ["do not fit a resnet50 with 2 labels", "last layer of 5 outputs"]),
    ],
)
def test_a_damaged_model_stops_the_server_with_one_paragraph(bentoml_home, tmp_path, how, words):
    tag = damaged_model(how)
    code, output = serve_until_exit(tag, tmp_path / "serve.log")
    assert code != 0, output
    assert "Traceback" not in output, output
    [message] = [line for line in output.splitlines() if "refuses to start" in line]
    assert tag in message and "python -m train" in message
    for word in words:
        assert word in message, message


def test_a_model_missing_from_the_store_stops_the_server(bentoml_home, tmp_path):
    code, output = serve_until_exit("resnet50:not-in-the-store", tmp_path / "serve.log")
    assert code != 0, output
    assert "Traceback" not in output and "resnet50:not-in-the-store" in output, output
