"""`bentoml build` makes a Bento with the model inside, and the built Bento serves."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import yaml

from classifier.artifact import save_model
from classifier.testing.models import random_model
from tests import ROOT, images
from tests.e2e.conftest import BENTOML, serve


def build(model_tag: str, *args: str, **env: str) -> tuple[str, Path]:
    """`bentoml build` in the project's root: the Bento's tag and folder."""
    env = {**os.environ, "CLASSIFIER_MODEL_TAG": model_tag, **env}
    built = subprocess.run(
        [BENTOML, "build", "--output", "tag", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr + built.stdout
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("image-classifier:")
    bento_dir = subprocess.run(
        [BENTOML, "get", tag, "-o", "path"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    return tag, Path(bento_dir)


def cleanup_runs_after_install(dockerfile: str) -> bool:
    """The image's Dockerfile runs scripts/image-cleanup.sh once the Python packages are in."""
    install = dockerfile.index("pip install -r $BENTO_PATH/env/python/requirements.txt")
    cleanup = dockerfile.find("./env/docker/script__")  # bentofile docker.setup_script
    return cleanup > install


def test_built_bento_serves(stored_model, tmp_path):
    tag, bento_dir = build(str(stored_model.tag))
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert [m["tag"] for m in manifest["services"][0]["models"]] == [str(stored_model.tag)]
    assert "resources" not in manifest["services"][0]["config"]  # no GPU asked for
    # the service's requirements only: tests and benchmarks stay out of the Bento and its image
    assert not (bento_dir / "src" / "classifier" / "testing").exists()  # their shared helpers
    packaged = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    assert "torch==" in packaged and "bentoml==" in packaged
    # (matplotlib is the service's too: Captum needs it, and the heatmaps take its colour maps)
    for development_only in ("pytest", "schemathesis", "locust", "litserve", "scikit-learn"):
        assert development_only not in packaged, development_only
    dockerfile = (bento_dir / "env" / "docker" / "Dockerfile").read_text()
    assert "\nFROM python:3.11-slim " in dockerfile
    assert cleanup_runs_after_install(dockerfile)

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
        # the web page is packaged too
        for asset in ("", "app.js", "style.css"):
            assert httpx.get(f"{server.url}/ui/{asset}").status_code == 200, asset
    finally:
        server.stop()


def test_cpu_image_takes_torch_from_pytorchs_cpu_index(stored_model):
    _, bento_dir = build(str(stored_model.tag), "-f", "deploy/bentofile.cpu.yaml", ".")
    packaged = (bento_dir / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in packaged
    assert "torch==2.14.1" in packaged
    dockerfile = (bento_dir / "env" / "docker" / "Dockerfile").read_text()
    # uv takes each package from the index with the best match, not the first that lists it
    assert "ENV UV_INDEX_STRATEGY=$UV_INDEX_STRATEGY" in dockerfile
    assert dockerfile.index("UV_INDEX_STRATEGY") < dockerfile.index("pip install -r")
    assert cleanup_runs_after_install(dockerfile)


def test_gpu_image_is_cuda_based_and_asks_for_a_gpu(stored_model):
    _, bento_dir = build(
        str(stored_model.tag), "-f", "deploy/bentofile.gpu.yaml", ".", CLASSIFIER_GPUS="1"
    )
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert manifest["services"][0]["config"]["resources"] == {"gpu": 1}
    dockerfile = (bento_dir / "env" / "docker" / "Dockerfile").read_text()
    assert "\nFROM nvidia/cuda:13.0.0-base-ubuntu24.04 " in dockerfile
    # in the image too, where BentoML then hands the workers the GPU
    assert 'ARG CLASSIFIER_GPUS="1"' in dockerfile or "ARG CLASSIFIER_GPUS=1" in dockerfile
    # pip, to install uv, before anything needs it
    assert dockerfile.index("python3-pip") < dockerfile.index("pip install uv")
    assert cleanup_runs_after_install(dockerfile)
