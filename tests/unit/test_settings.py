"""Settings come from CLASSIFIER_* environment variables and are validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from classifier.settings import Settings
from tests import ROOT


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


def test_the_model_is_compiled_by_default_with_its_cache_beside_the_model_store(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    options = Settings().predictor_options()
    assert options["compile"] == "auto"
    assert options["compile_cache_dir"] == tmp_path / "compile-cache"
    monkeypatch.setenv("CLASSIFIER_COMPILE_CACHE_DIR", "/var/cache/classifier")
    monkeypatch.setenv("CLASSIFIER_COMPILE", "off")
    options = Settings().predictor_options()
    assert options["compile_cache_dir"] == Path("/var/cache/classifier")
    assert options["compile"] == "off"


@pytest.mark.parametrize(
    "name, value",
    [
        ("CLASSIFIER_PRECISION", "fp8"),
        ("CLASSIFIER_MAX_BATCH_SIZE", "1"),
        ("CLASSIFIER_THREADS", "x"),
        ("CLASSIFIER_COMPILE", "yes"),
    ],
)
def test_invalid_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_cors_origins_are_comma_separated_and_closed_by_default(monkeypatch):
    assert Settings().cors_origins == []
    monkeypatch.setenv("CLASSIFIER_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_api_key_from_the_environment_or_a_file(monkeypatch, tmp_path):
    assert Settings().required_api_key() is None
    monkeypatch.setenv("CLASSIFIER_API_KEY", "s3cret")
    settings = Settings()
    assert settings.required_api_key() == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    monkeypatch.delenv("CLASSIFIER_API_KEY")
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("CLASSIFIER_API_KEY_FILE", str(secret))
    assert Settings().required_api_key() == "from-a-file"


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_an_unusable_key_file_is_refused(monkeypatch, tmp_path, content):
    secret = tmp_path / "key"
    if content is not None:
        secret.write_text(content)
    monkeypatch.setenv("CLASSIFIER_API_KEY_FILE", str(secret))
    with pytest.raises(ValueError, match="CLASSIFIER_API_KEY_FILE"):
        Settings().required_api_key()


def test_key_and_key_file_together_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("CLASSIFIER_API_KEY", "a")
    monkeypatch.setenv("CLASSIFIER_API_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_every_setting_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in Settings.model_fields:
        assert f"| `CLASSIFIER_{name.upper()}` |" in table, name


def test_a_refused_setting_is_not_echoed(monkeypatch, tmp_path):
    """The error names the problem, never the value: it may be the API key."""
    monkeypatch.setenv("CLASSIFIER_API_KEY", "do-not-print-me")
    monkeypatch.setenv("CLASSIFIER_API_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "not both" in str(caught.value) and "do-not-print-me" not in str(caught.value)


def test_protecting_metrics_needs_a_key(monkeypatch):
    monkeypatch.setenv("CLASSIFIER_METRICS_REQUIRE_KEY", "true")
    with pytest.raises(ValidationError, match="needs CLASSIFIER_API_KEY"):
        Settings()
    monkeypatch.setenv("CLASSIFIER_API_KEY", "k")
    assert Settings().metrics_require_key
