"""`python -m classifier.client evaluate` against the real server, on the second renderer's shapes.

The report's figures agree with the answers it recorded; wrong folders are refused before anything
is sent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from classifier.client.records import read_records
from tests import ROOT, images
from tests.e2e.conftest import model_images
from train import field_shapes


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "classifier.client", "evaluate", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return field_shapes.write_dataset(tmp_path_factory.mktemp("shapes"), per_class=12, size=64)


def test_the_report_agrees_with_the_answers(url, shapes, tmp_path):
    report_dir = tmp_path / "report"
    result = evaluate(str(shapes), "--report", str(report_dir), "--url", url, "--top-k", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    records = read_records(report_dir / "predictions.jsonl")
    assert len(records) == report["images"] == report["answered"] == 60

    truth = {record.path: record.path.split("/")[-2] for record in records}
    top1 = sum(r.predictions[0].label == truth[r.path] for r in records) / len(records)
    top2 = sum(truth[r.path] in [p.label for p in r.predictions] for r in records) / len(records)
    assert report["top1_accuracy"] == pytest.approx(top1)
    assert report["top_k"] == 2 and report["top_k_accuracy"] == pytest.approx(top2)

    labels = report["confusion_matrix"]["labels"]
    counts = report["confusion_matrix"]["counts"]
    assert labels == list(field_shapes.LABELS)
    assert [sum(row) for row in counts] == [12] * 5
    assert sum(counts[i][i] for i in range(5)) == round(top1 * 60)
    for i, label in enumerate(labels):
        per_class = report["per_class"][label]
        assert per_class["support"] == 12
        assert per_class["recall"] == pytest.approx(counts[i][i] / 12)
        predicted = sum(row[i] for row in counts)
        assert per_class["precision"] == pytest.approx(counts[i][i] / predicted if predicted else 0)

    mistakes = report["most_confident_mistakes"]
    assert len(mistakes) == min(10, 60 - round(top1 * 60))
    assert [m["score"] for m in mistakes] == sorted((m["score"] for m in mistakes), reverse=True)
    assert all(m["true"] != m["predicted"] for m in mistakes)

    with Image.open(report_dir / "confusion_matrix.png") as picture:
        assert picture.format == "PNG" and picture.width >= 400
    markdown = (report_dir / "report.md").read_text()
    assert f"| {top1:.1%} | {top2:.1%} |" in markdown
    assert "![Confusion matrix](confusion_matrix.png)" in markdown
    assert "top-1" in result.stderr and "evaluating: 60/60" in result.stderr


def test_folders_the_model_does_not_know_are_refused_first(url, shapes, tmp_path):
    strange = tmp_path / "strange"
    for name in ("circle", "hexagon", "Star"):
        (strange / name).mkdir(parents=True)
        (strange / name / "a.jpg").write_bytes(images.jpeg(0))
    before = model_images(url)
    result = evaluate(str(strange), "--report", str(tmp_path / "report"), "--url", url)
    assert result.returncode == 2
    assert "does not know the labels 'Star', 'hexagon'" in result.stderr
    assert "it knows circle, cross, square, star, triangle" in result.stderr
    assert not (tmp_path / "report").exists() and model_images(url) == before
