"""The CPU and GPU image variants stay the project's bentofile.yaml plus their marked lines."""

from __future__ import annotations

import pytest
import yaml

from tests import ROOT


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_variant_is_the_bentofile_plus_its_marked_lines(variant):
    text = (ROOT / "deploy" / f"bentofile.{variant}.yaml").read_text()
    marker = f"# {variant.upper()}"
    unmarked = [line for line in text.splitlines() if not line.rstrip().endswith(marker)]
    assert len(unmarked) < len(text.splitlines())
    assert yaml.safe_load("\n".join(unmarked)) == yaml.safe_load(
        (ROOT / "bentofile.yaml").read_text()
    )


def test_cleanup_script_is_executable():
    # BentoML refuses a setup_script without the executable bit: git must keep it
    script = ROOT / yaml.safe_load((ROOT / "bentofile.yaml").read_text())["docker"]["setup_script"]
    assert script.stat().st_mode & 0o111
