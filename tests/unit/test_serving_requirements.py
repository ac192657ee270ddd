"""Serving and training import only what scripts/serve.sh installs (requirements.txt)."""

from __future__ import annotations

import collections
import functools
import importlib.metadata
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests import ROOT

# every module serve.sh runs, and the library the Bento holds (classifier/testing stays out of it)
SERVING_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for folder in ("classifier", "train")
    for path in (ROOT / folder).rglob("*.py")
    if "testing" not in path.parts
) + ["service"]

# In a fresh interpreter whose site-packages holds only what serve.sh installs
IMPORT_ALL = """
import importlib, site, sys
site.addsitedir({site_packages!r})
sys.path.insert(0, {root!r})
for module in {modules!r}:
    importlib.import_module(module)
"""


def distribution_name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s;<>=!~\[(]", requirement.strip())[0]).lower()


def serving_distributions() -> set[str]:
    """requirements.txt and everything it depends on, as installed."""
    wanted = [
        distribution_name(line)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    found: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        wanted += [distribution_name(r) for r in requires if "extra ==" not in r]
    return found


@functools.cache
def development_only_entries() -> frozenset[str]:
    """The names in site-packages (packages, modules, metadata) that only the development
    packages own."""
    owners = collections.defaultdict(set)
    for distribution in importlib.metadata.distributions():
        name = distribution_name(distribution.metadata["Name"])
        # each file's first path part, straight from a wheel's RECORD when there is one: torch
        # alone lists 20,000 files, too many to make a path object of each
        record = distribution.read_text("RECORD")
        if record is not None:
            tops = {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines()}
        else:
            tops = {file.parts[0] for file in distribution.files or []}
        for top in tops - {"", ".."}:
            owners[top].add(name)
    serving = serving_distributions()
    return frozenset(entry for entry, names in owners.items() if not names & serving)


def test_development_packages_are_told_apart():
    left_out = development_only_entries()
    assert {"pytest", "sklearn", "playwright", "locust", "schemathesis"} <= left_out
    assert not {"torch", "bentoml", "PIL", "tqdm", "httpx", "numpy"} & left_out


def test_serving_and_training_import_only_what_serve_sh_installs(tmp_path):
    assert "service" in SERVING_MODULES and "train.demo" in SERVING_MODULES
    installed = Path(sysconfig.get_paths()["purelib"])
    left_out = development_only_entries()
    for entry in installed.iterdir():
        if entry.name not in left_out:
            (tmp_path / entry.name).symlink_to(entry)
    code = IMPORT_ALL.format(site_packages=str(tmp_path), root=str(ROOT), modules=SERVING_MODULES)
    # -S: not the real site-packages, only the copy above without the development packages
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
