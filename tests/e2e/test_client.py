"""BentoML's Python clients and our command line against the running service."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys

import bentoml
import pytest
from bentoml.exceptions import BentoMLException

from classifier.testing.models import SHAPE_LABELS
from tests import ROOT, images


@pytest.fixture
def photo_files(tmp_path):
    paths = []
    for seed, fmt in enumerate(("jpg", "png")):
        path = tmp_path / f"photo{seed}.{fmt}"
        path.write_bytes(images.jpeg(seed) if fmt == "jpg" else images.png(seed))
        paths.append(path)
    return paths


def labels_of(answer: dict) -> list[str]:
    return [p["label"] for p in answer["predictions"]]


def test_sync_client_every_api(url, photo_files):
    with bentoml.SyncHTTPClient(url) as client:
        assert client.is_ready()
        one = client.predict(image=photo_files[0], top_k=3)
        assert len(labels_of(one)) == 3 and set(labels_of(one)) <= set(SHAPE_LABELS)
        encoded = base64.b64encode(photo_files[0].read_bytes()).decode()
        assert labels_of(client.predict_base64(image=encoded, top_k=3)) == labels_of(one)
        batch = client.predict_batch(images=photo_files, top_k=2)
        assert len(batch["results"]) == 2
        assert labels_of(batch["results"][0]) == labels_of(one)[:2]


def test_sync_client_raises_on_a_bad_image(url, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with bentoml.SyncHTTPClient(url) as client:
        with pytest.raises(BentoMLException) as caught:
            client.predict(image=bad)
    assert "not a supported image" in str(caught.value)


def test_async_client(url, photo_files):
    async def run():
        async with bentoml.AsyncHTTPClient(url) as client:
            return await asyncio.gather(*(client.predict(image=p, top_k=2) for p in photo_files))

    answers = asyncio.run(run())
    assert [len(labels_of(a)) for a in answers] == [2, 2]


def test_command_line(url, photo_files, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "classifier.client", *map(str, photo_files), "--url", url,
         "--top-k", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(photo_files[0]) in result.stdout and "%" in result.stdout
    assert result.stdout.count("resnet50:") == 2

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "classifier.client", str(bad), "--url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "empty" in result.stderr
