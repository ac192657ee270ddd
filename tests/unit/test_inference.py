"""Inference: probabilities, top-k, precision choice and the stored-model round trip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from classifier.artifact import (
    WEIGHTS_FILE,
    ModelIntegrityError,
    load_model,
    save_model,
    tensor_shapes,
)
from classifier.cpu import cpu_supports_bf16
from classifier.inference import Predictor, resolve_precision, top_k
from classifier.testing.models import random_model
from tests import ROOT, images


def pixels_of(card, seeds=range(4)) -> np.ndarray:
    return np.stack([card.preprocessing.prepare(images.photo(seed)) for seed in seeds])


def test_top_k_is_sorted_and_labelled():
    probabilities = torch.tensor([0.1, 0.5, 0.05, 0.3, 0.05])
    predictions = top_k(probabilities, ["a", "b", "c", "d", "e"], 3)
    assert [(p.label, p.index) for p in predictions] == [("b", 1), ("d", 3), ("a", 0)]
    assert predictions[0].score == pytest.approx(0.5)


def test_top_k_never_exceeds_the_labels():
    assert len(top_k(torch.tensor([0.6, 0.4]), ["a", "b"], 5)) == 2


def test_predictor_gives_probabilities_per_image():
    model, card = random_model()
    predictor = Predictor(model, card, precision="fp32")
    probabilities = predictor.predict(pixels_of(card))
    assert probabilities.shape == (4, 5)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(4))


def test_a_batch_answers_like_single_images():
    model, card = random_model()
    predictor = Predictor(model, card, precision="fp32")
    pixels = pixels_of(card)
    together = predictor.predict(pixels)
    alone = torch.cat([predictor.predict(pixels[i : i + 1]) for i in range(len(pixels))])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.skipif(not cpu_supports_bf16(), reason="no CPU bf16")
def test_bf16_agrees_with_fp32():
    model, card = random_model()
    fp32 = Predictor(model, card, precision="fp32").predict(pixels_of(card, range(8)))
    model, card = random_model()
    bf16 = Predictor(model, card, precision="bf16").predict(pixels_of(card, range(8)))
    assert (fp32 - bf16).abs().max() < 0.1


def test_precision_choice():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) in ("bf16", "fp32")
    with pytest.raises(ValueError, match="GPU"):
        resolve_precision("fp16", cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_path():
    model, card = random_model()
    predictor = Predictor(model, card, device="cuda", precision="auto")
    assert predictor.precision in ("bf16", "fp16")
    assert predictor.predict(pixels_of(card)).shape == (4, 5)


def test_stored_model_round_trip(bentoml_home):
    model, card = random_model(seed=7)
    stored = save_model(model, card)
    loaded, loaded_card = load_model(stored.path, stored.info.metadata)
    assert loaded_card.labels == card.labels
    assert loaded_card.preprocessing == card.preprocessing
    assert len(loaded_card.weights_sha256) == 64
    assert stored.info.labels["source"] == "demo"
    assert str(stored.tag).startswith("resnet50:demo-")
    pixels = torch.from_numpy(pixels_of(card))
    with torch.inference_mode():
        expected = model(card.preprocessing.normalize(pixels))
        actual = loaded(card.preprocessing.normalize(pixels))
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_corrupt_weights_are_refused(bentoml_home, tmp_path):
    model, card = random_model(seed=8)
    stored = save_model(model, card)
    weights = tmp_path / WEIGHTS_FILE
    data = bytearray(Path(stored.path_of(WEIGHTS_FILE)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_model(tmp_path, stored.info.metadata)
    weights.unlink()
    with pytest.raises(ModelIntegrityError, match="cannot read"):
        load_model(tmp_path, stored.info.metadata)


def test_tensor_shapes_are_read_from_a_saved_state_dict_without_loading_it(bentoml_home):
    model, card = random_model(seed=8)
    stored = save_model(model, card)
    data = Path(stored.path_of(WEIGHTS_FILE)).read_bytes()
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert tensor_shapes(data) == expected and expected["fc.weight"] == (5, 2048)
    assert tensor_shapes(b"not a zip") == {} and tensor_shapes(data[: len(data) // 2]) == {}


def test_weights_that_do_not_fit_the_card_are_refused(bentoml_home, tmp_path):
    """A card whose hash matches, but whose labels do not match the weights' head."""
    model, card = random_model(seed=8)
    stored = save_model(model, card)
    metadata = {**stored.info.metadata, "labels": ["a", "b"]}
    with pytest.raises(ModelIntegrityError, match="do not fit a resnet50 with 2 labels"):
        load_model(stored.path, metadata)


SAVE = """
import sys
from classifier.artifact import save_model
from classifier.testing.models import random_model
print(save_model(*random_model(seed=int(sys.argv[1]))).tag)
"""


def test_concurrent_saves_leave_every_model_whole(tmp_path):
    """Several processes save at once: every version loads, and `latest` names one that does."""
    home = tmp_path / "bentoml"
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVE, str(seed)],
            cwd=ROOT,
            env={**os.environ, "BENTOML_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(3)
    ]
    tags = []
    for saver in savers:
        out, err = saver.communicate(timeout=300)
        assert saver.returncode == 0, err
        tags.append(out.strip().splitlines()[-1])
    models = home / "models" / "resnet50"
    versions = {path.name for path in models.iterdir() if path.is_dir()}
    assert versions == {tag.split(":")[1] for tag in tags}
    for version in versions:
        metadata = yaml.safe_load((models / version / "model.yaml").read_text())["metadata"]
        load_model(models / version, metadata)
    assert (models / "latest").read_text().strip() in versions
