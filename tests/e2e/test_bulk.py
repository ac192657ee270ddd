"""The bulk client against a real server that admits four requests at a time: all once, 503s too.

Folders, retries after 503, a run stopped halfway and resumed, every image through the model once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from classifier.client.records import read_records
from tests import ROOT, images
from tests.e2e.conftest import LIMITED_CONCURRENCY, model_images

GOOD, BAD = 285, 15
HALFWAY = (GOOD + BAD) // 2  # answers written when the first run is stopped


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory):
    """300 image files in nested folders, 15 of them broken, and two files that are no images:
    (root, the broken files)."""
    root = tmp_path_factory.mktemp("photos")
    broken_files = set()
    good = images.jpeg(0, size=(48, 40))
    broken = [
        good[:120],  # a JPEG cut short in its header
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature and nothing sensible
        b"GIF89a" + b"\x01" * 10,
    ]
    for n in range(GOOD + BAD):
        folder = root / f"album{n % 3}" / ("nested" if n % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        if n % 20 == 19:
            (folder / f"{n:03d}.jpg").write_bytes(broken[n % 3])
            broken_files.add(folder / f"{n:03d}.jpg")
        else:  # each a little different, and named without a suffix now and then
            data = images.jpeg(n, size=(48, 40)) if n % 7 else images.png(n, size=(40, 48))
            (folder / (f"{n:03d}" if n % 11 == 0 else f"{n:03d}.img")).write_bytes(data)
    (root / "album0" / "notes.txt").write_text("not an image")
    (root / "album1" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root, broken_files


def client(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "classifier.client", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_folder_stopped_halfway_and_resumed(limited_server, photo_tree, tmp_path, suffix):
    photo_tree, broken = photo_tree
    url = limited_server.url
    output = tmp_path / f"results{suffix}"
    before = model_images(url)
    # four times the concurrency the service allows: it answers 503 with Retry-After
    options = ["--url", url, "--output", str(output), "--concurrency", str(4 * LIMITED_CONCURRENCY),
               "--batch-size", "4", "--retries", "40", "--top-k", "2"]  # fmt: skip

    first = client(str(photo_tree), *options)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and first.poll() is None:
        if output.exists() and len(output.read_text().splitlines()) > HALFWAY:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, log = first.communicate(timeout=120)
    assert first.returncode == 130, log
    assert "--resume" in log and "stopping: waiting for the answers in flight" in log
    held = read_records(output)
    stopped_at = sum(record.final for record in held)
    assert len(held) >= HALFWAY and stopped_at < GOOD + BAD

    existing = client(str(photo_tree), *options)
    _, log = existing.communicate(timeout=60)
    assert existing.returncode == 2 and "--resume" in log  # never overwritten by mistake

    second = client(str(photo_tree), *options, "--resume")
    _, log = second.communicate(timeout=300)
    assert second.returncode == 1, log  # some files failed
    assert f"resuming: {stopped_at} files already answered" in log
    assert f"holds {GOOD + BAD} of {GOOD + BAD} files: {GOOD} classified, {BAD} failed" in log
    retried = sum(int(line.split("; ")[1].split()[0]) for line in log.splitlines()
                  if "requests retried" in line)  # fmt: skip
    assert retried > 0, "the service never said it was busy: the test proves nothing"

    records = {record.path: record for record in read_records(output)}
    files = sorted(p for p in photo_tree.rglob("*") if p.is_file() and p.suffix != ".txt")
    files.remove(photo_tree / "album1" / ".DS_Store")
    assert sorted(records) == sorted(map(str, files))
    with httpx.Client(base_url=url, timeout=60) as http:
        for path in files:
            record = records[str(path)]
            if path not in broken:
                assert record.status == 200 and len(record.predictions) == 2, record
                continue
            # a broken file: recorded with what the service says about it on its own
            alone = http.post("/predict", files={"image": (path.name, path.read_bytes())})
            assert (record.error, record.status) == (alone.json()["error"], alone.status_code)
    # every good file went through the model exactly once, across both runs and all the 503s
    assert model_images(url) - before == GOOD


def test_files_named_and_a_table_each(limited_server, photo_tree):
    photo_tree, _ = photo_tree
    named = [photo_tree / "album0" / "000", photo_tree / "album0" / "notes.txt"]
    result = client(*map(str, named), "--url", limited_server.url, "--top-k", "3")
    out, err = result.communicate(timeout=120)
    assert result.returncode == 1
    assert out.count("model resnet50:") == 1 and str(named[0]) in out
    assert f"{named[1]}\n  error: " in err and "not a supported image" in err


def test_a_summary_of_the_records(limited_server, photo_tree, tmp_path):
    photo_tree, broken = photo_tree
    album = photo_tree / "album2"
    bad = sum(path.is_relative_to(album) for path in broken)
    good = sum(1 for path in album.rglob("*") if path.is_file()) - bad
    output = tmp_path / "one-album.jsonl"
    result = client(str(album), "--url", limited_server.url, "--output", str(output))
    _, log = result.communicate(timeout=300)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert {"path", "model", "predictions", "status"} <= set(lines[0])
    assert len(lines[0]["predictions"]) == 5  # the service's default top-k
    assert result.returncode == 1, log
    assert f"{good} of {good + bad} files classified, {bad} failed" in log
    assert f"holds {good + bad} of {good + bad} files: {good} classified, {bad} failed" in log


def test_a_top_k_the_model_cannot_give_is_refused_before_anything_is_sent(
    limited_server, photo_tree, tmp_path
):
    photo_tree, _ = photo_tree
    output = tmp_path / "never.jsonl"
    result = client(str(photo_tree), "--url", limited_server.url, "--output", str(output),
                    "--top-k", "7")  # fmt: skip
    _, log = result.communicate(timeout=60)
    assert result.returncode == 1 and "--top-k 7: the model has 5 labels" in log
    assert not output.exists()
