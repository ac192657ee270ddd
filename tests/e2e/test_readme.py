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
