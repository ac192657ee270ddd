"""The README's "Call it" examples, run as written against the running service."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests import ROOT, images

README = (ROOT / "README.md").read_text()
SECTION = README.split("## Call it", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", SECTION, re.S)
COMMANDS = [
    command
    for kind, block in BLOCKS
    if kind == "bash"
    for command in block.replace("\\\n", " ").strip().splitlines()
]
PYTHON = [block for kind, block in BLOCKS if kind == "python"]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(images.jpeg(11))
    (tmp_path / "photo2.png").write_bytes(images.png(12))
    return tmp_path


def test_the_readme_has_examples():
    assert len(COMMANDS) >= 6 and len(PYTHON) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_shell_example(command, url, workdir):
    command = command.replace("http://localhost:3000", url)
    command = re.sub(r"^python ", f"{sys.executable} ", command)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    if command.startswith("curl"):
        body = json.loads(result.stdout)
        assert "error" not in body, body
        assert {"predictions", "results", "labels"} & set(body), body
    else:
        assert "%" in result.stdout


def test_python_example(url, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    exec(PYTHON[0].replace("http://localhost:3000", url), {})
    assert "resnet50:" in capsys.readouterr().out


BULK = README.split("## A folder of images", 1)[1].split("\n## ", 1)[0]
BULK_COMMANDS = [
    line.split("  #")[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", BULK, re.S)
    for line in block.strip().splitlines()
]


def test_the_bulk_examples_in_order(url, workdir):
    """Each command of "A folder of images" as written, one after the other, in one folder."""
    photos = workdir / "photos" / "2026"
    photos.mkdir(parents=True)
    for seed in range(12):
        (photos / f"IMG_{seed:04d}.jpg").write_bytes(images.jpeg(seed, size=(64, 48)))
    (workdir / "photos" / "notes.txt").write_text("not an image")
    assert len(BULK_COMMANDS) == 6
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in BULK_COMMANDS:
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        command += f" --url {url}" if "classifier.client" in command else ""
        result = subprocess.run(
            ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert len((workdir / "results.jsonl").read_text().splitlines()) == 12
    assert len((workdir / "results.csv").read_text().splitlines()) == 13  # and its header
    assert len(list((workdir / "heatmaps" / "2026").glob("IMG_*.png"))) == 12
    report = json.loads((workdir / "report" / "report.json").read_text())
    assert report["answered"] == 500
    [picture] = re.findall(r"!\[[^\]]+\]\((docs/evaluation/[^)]+\.png)\)", BULK)
    assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
