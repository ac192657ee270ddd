"""Shared fixtures: a private BentoML model store per test session, and stored test models."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before anything imports bentoml: tests never touch the user's ~/bentoml, and leave nothing
# behind (each session's store holds several models and Bentos, hundreds of MB).
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bentoml-home-")
atexit.register(shutil.rmtree, os.environ["BENTOML_HOME"], ignore_errors=True)
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import pytest  # noqa: E402
import torch  # noqa: E402
from torchvision.models import ResNet50_Weights  # noqa: E402

from classifier.artifact import ModelCard, build_model, save_model  # noqa: E402
from classifier.preprocess import Preprocessing  # noqa: E402

SHAPE_LABELS = ["circle", "cross", "square", "star", "triangle"]


def random_model(labels=SHAPE_LABELS, image_size: int = 64, seed: int = 0, source="demo"):
    """A randomly initialised ResNet50 and its card, for tests that need no accuracy."""
    torch.manual_seed(seed)
    model = build_model(len(labels))
    # zero_init_residual makes every block an identity; perturb so outputs depend on the input
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bn3.weight"):
                parameter.uniform_(0.5, 1.5)
    card = ModelCard(
        weights_source=source,
        labels=list(labels),
        preprocessing=Preprocessing.from_weights(ResNet50_Weights.IMAGENET1K_V2).at_size(
            image_size
        ),
    )
    return model.eval(), card


@pytest.fixture(scope="session")
def bentoml_home() -> str:
    return os.environ["BENTOML_HOME"]


@pytest.fixture(scope="session")
def stored_model(bentoml_home):
    """A random-weight shapes model saved in the session's model store."""
    model, card = random_model()
    return save_model(model, card)
