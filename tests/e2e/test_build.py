"""`bentoml build` makes a Bento with the model inside, and the built Bento serves."""

from __future__ import annotations

import os
import subprocess

import httpx
import yaml

from classifier.artifact import save_model
from tests import ROOT, images
from tests.conftest import random_model
from tests.e2e.conftest import BENTOML, serve


def test_built_bento_serves(stored_model, tmp_path):
    env = {**os.environ, "CLASSIFIER_MODEL_TAG": str(stored_model.tag)}
    built = subprocess.run(
        [BENTOML, "build", "--output", "tag"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr + built.stdout
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("image-classifier:")

    bento_dir = subprocess.run(
        [BENTOML, "get", tag, "-o", "path"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    manifest = yaml.safe_load(open(os.path.join(bento_dir, "bento.yaml")))
    assert [m["tag"] for m in manifest["services"][0]["models"]] == [str(stored_model.tag)]
    # the service's requirements only: tests and benchmarks stay out of the Bento and its image
    packaged = open(os.path.join(bento_dir, "env", "python", "requirements.txt")).read()
    assert "torch==" in packaged and "bentoml==" in packaged
    for development_only in ("pytest", "schemathesis", "locust", "litserve", "matplotlib"):
        assert development_only not in packaged, development_only

    # A newer model in the store must not change what the built Bento serves.
    model, card = random_model(seed=3)
    save_model(model, card)
    server = serve(tag, {}, tmp_path / "serve.log")
    try:
        server.wait_ready()
        response = httpx.post(
            f"{server.url}/predict", files={"image": ("a.jpg", images.jpeg())}, timeout=60
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"] == str(stored_model.tag)
    finally:
        server.stop()
