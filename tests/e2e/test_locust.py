"""The README's Locust command runs headless against the service without a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import ROOT


def test_locustfile_runs_clean(url, tmp_path):
    locust = str(Path(sys.executable).with_name("locust"))
    result = subprocess.run(
        [locust, "-f", "bench/locustfile.py", "--host", url, "--headless", "-u", "4", "-r", "4",
         "-t", "15s", "--csv", str(tmp_path / "run"), "--only-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats = (tmp_path / "run_stats.csv").read_text()
    assert ",/predict," in stats, stats  # the most frequent task; the others are rarer
