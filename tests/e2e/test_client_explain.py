"""Explanations from the real server: the bulk client's --explain, and BentoML's client."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import bentoml
import httpx
import pytest
from PIL import Image

from classifier.testing.models import SHAPE_LABELS
from tests import ROOT, images

CROP = 64  # the test model's (tests/conftest.py)


def heatmap_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as heatmap:
        assert heatmap.format == "PNG"
        return heatmap.size


@pytest.fixture
def photos(tmp_path) -> Path:
    """Six images in nested folders (two named alike but for their suffix) and a broken one."""
    root = tmp_path / "photos"
    (root / "album" / "nested").mkdir(parents=True)
    for n, name in enumerate(["a.jpg", "album/b.jpg", "album/b.png", "album/nested/c",
                              "album/nested/d.jpg", "e.jpg"]):  # fmt: skip
        data = images.png(n, size=(96, 80)) if name.endswith(".png") else images.jpeg(n, (96, 80))
        (root / name).write_bytes(data)
    (root / "album" / "broken.jpg").write_bytes(images.jpeg(9)[:120])
    return root


def client(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "classifier.client", *args],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_folder_explained_each_heatmap_saved_beside_its_record(url, photos, tmp_path):
    options = ["--url", url, "--output", "explained.jsonl", "--explain", "heatmaps", "--top-k", "2"]
    result = client("photos", *options, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the broken file
    assert "6 of 7 files explained, 1 failed" in result.stderr
    records = {
        record["path"]: record
        for record in map(json.loads, (tmp_path / "explained.jsonl").read_text().splitlines())
    }
    mirrored = {"photos/a.jpg": "heatmaps/a.png", "photos/album/b.jpg": "heatmaps/album/b.png",
                "photos/album/b.png": "heatmaps/album/b.png.png",
                "photos/album/nested/c": "heatmaps/album/nested/c.png",
                "photos/album/nested/d.jpg": "heatmaps/album/nested/d.png",
                "photos/e.jpg": "heatmaps/e.png"}  # fmt: skip
    assert sorted(records) == sorted([*mirrored, "photos/album/broken.jpg"])
    for path, heatmap in mirrored.items():
        record = records[path]
        assert record["status"] == 200 and len(record["predictions"]) == 2, record
        assert record["explained"] == record["predictions"][0]["label"]
        assert record["method"] == "integrated-gradients"  # the test model is too coarse
        assert record["heatmap"] == heatmap and "heatmap_png" not in record
        assert heatmap_size((tmp_path / heatmap).read_bytes()) == (CROP, CROP)
    assert sorted(p.name for p in (tmp_path / "heatmaps").rglob("*")) == sorted(
        ["album", "nested", *(Path(heatmap).name for heatmap in mirrored.values())]
    )  # and nothing else: no PNG for the broken file, no partial file

    broken = records.pop("photos/album/broken.jpg")
    alone = httpx.post(
        f"{url}/explain", files={"image": ("broken.jpg", images.jpeg(9)[:120])}, timeout=60
    )
    assert (broken["error"], broken["status"]) == (alone.json()["error"], alone.status_code)
    assert "heatmap" not in broken

    # a heatmap lost since: --resume explains that file alone again
    (tmp_path / "heatmaps" / "e.png").unlink()
    again = client("photos", *options, "--resume", cwd=tmp_path)
    assert "resuming: 6 files already answered, 1 to go" in again.stderr, again.stderr
    assert "1 of 1 files explained" in again.stderr and again.returncode == 1  # the broken one
    last = json.loads((tmp_path / "explained.jsonl").read_text().splitlines()[-1])
    assert last["path"] == "photos/e.jpg"
    assert last["explained"] == records["photos/e.jpg"]["explained"]
    assert heatmap_size((tmp_path / "heatmaps" / "e.png").read_bytes()) == (CROP, CROP)

    # another label: each file is explained again, for it
    star = client("photos", *options, "--resume", "--label", "star", cwd=tmp_path)
    assert "to go" in star.stderr, star.stderr
    final = {}
    for line in (tmp_path / "explained.jsonl").read_text().splitlines():
        record = json.loads(line)
        final[record["path"]] = record.get("explained")  # the last record of a file counts
    assert all(final[path] == "star" for path in records), final


def test_a_label_the_model_does_not_have_is_refused_before_anything_is_sent(url, photos):
    result = client(str(photos / "a.jpg"), "--url", url, "--explain", "out", "--label", "giraffe",
                    cwd=photos)  # fmt: skip
    assert result.returncode == 1 and "--label 'giraffe'" in result.stderr
    assert not (photos / "out").exists()


def test_bentoml_s_client_explains(url, photos):
    with bentoml.SyncHTTPClient(url) as bento:
        answer = bento.explain(image=photos / "a.jpg", top_k=2)
    assert answer["explained"] == answer["predictions"][0] and len(answer["predictions"]) == 2
    assert answer["explained"]["label"] in SHAPE_LABELS
    png = base64.b64decode(answer["explanation"]["heatmap_png"])
    assert heatmap_size(png) == (CROP, CROP)


def test_bentoml_s_client_explains_the_label_asked_for(url, photos):
    """BentoML's client sends each text field as JSON (label="star" as "star", quotes and all),
    as BentoML's own form parser expects."""
    with bentoml.SyncHTTPClient(url) as bento:
        answer = bento.explain(image=photos / "a.jpg", label="star", top_k=1)
        default = bento.explain(image=photos / "a.jpg", label=None)
    assert answer["explained"]["label"] == "star" and len(answer["predictions"]) == 1
    assert default["explained"] == default["predictions"][0]
