"""A corrupt or missing model stops `bentoml serve` with one clear message, not a crash loop.

Every kind of damage and its message: tests/unit/test_refusals.py; here, the real server."""

from __future__ import annotations

from tests.e2e.conftest import serve_until_exit
from tests.unit.test_refusals import DAMAGES, damaged_model


def test_a_damaged_model_stops_the_server_with_one_paragraph(bentoml_home, tmp_path):
    how, words = DAMAGES[0]  # one bit of the weights flipped
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
