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

from classifier.artifact import save_model  # noqa: E402
from classifier.testing.models import random_model  # noqa: E402


@pytest.fixture(scope="session")
def bentoml_home() -> str:
    return os.environ["BENTOML_HOME"]


@pytest.fixture(scope="session")
def stored_model(bentoml_home):
    """A random-weight shapes model saved in the session's model store."""
    model, card = random_model()
    return save_model(model, card)
