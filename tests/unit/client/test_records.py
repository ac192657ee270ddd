"""Records: written as JSON Lines or CSV, read back for --resume, torn last lines left out."""

from __future__ import annotations

import pytest

from classifier.client.records import Prediction, Record, RecordWriter, read_records

ANSWERED = Record(
    path="a/1.jpg",
    model="resnet50:x",
    predictions=[Prediction(label="cat", score=0.9), Prediction(label="dog", score=0.1)],
    status=200,
)
BAD = Record(path="a/2.jpg", error="not a supported image", status=415)
BAD_IN_A_BATCH = Record(path="a/4.jpg", model="resnet50:x", error="the image is empty", status=400)
BUSY = Record(path="a/3.jpg", error="the service is busy (9 tries)", status=503)
UNREACHABLE = Record(path="a/5.jpg", error="no answer: ConnectError()")
ODD_NAMES = Record(
    path='b/"quoted", with commas\nand a line.jpg',
    model="resnet50:x",
    predictions=[Prediction(label="tench, Tinca tinca", score=0.5)],
    status=200,
)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_records_read_back_as_written(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    writer = RecordWriter(path, top_k=2)
    for record in (ANSWERED, BAD, BAD_IN_A_BATCH, BUSY, UNREACHABLE, ODD_NAMES):
        writer.write(record)
    writer.close()
    assert read_records(path) == [ANSWERED, BAD, BAD_IN_A_BATCH, BUSY, UNREACHABLE, ODD_NAMES]


def test_only_the_service_s_last_word_is_final():
    assert ANSWERED.final and BAD.final and BAD_IN_A_BATCH.final
    assert not BUSY.final and not UNREACHABLE.final


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_torn_last_line_is_left_out(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    writer = RecordWriter(path, top_k=2)
    writer.write(BAD)
    writer.write(ANSWERED)
    writer.close()
    text = path.read_text()
    path.write_text(text[:-9])  # stopped while writing the last record: its scores cut short
    assert read_records(path) == [BAD]


def test_resuming_keeps_what_it_is_given_and_appends(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = RecordWriter(path, top_k=2)
    writer.write(BUSY)
    writer.write(ANSWERED)
    writer.close()
    kept = [record for record in read_records(path) if record.final]
    writer = RecordWriter(path, top_k=2, kept=kept)
    writer.write(BUSY.model_copy(update={"predictions": ANSWERED.predictions, "status": 200}))
    writer.close()
    records = read_records(path)
    assert [record.path for record in records] == [ANSWERED.path, BUSY.path]
    assert len(path.read_text().splitlines()) == 2
    assert not list(tmp_path.glob("*.partial"))


EXPLAINED = ANSWERED.model_copy(
    update={"explained": "dog", "method": "grad-cam", "heatmap": "heatmaps/a/1.png"}
)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_explanations_read_back_as_written(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    writer = RecordWriter(path, top_k=2, explaining=True)
    for record in (EXPLAINED, BAD, BUSY):
        writer.write(record)
    writer.close()
    assert read_records(path) == [EXPLAINED, BAD, BUSY]
    if suffix == ".csv":
        header = path.read_text().splitlines()[0]
        assert (
            header
            == "path,status,error,model,explained,method,heatmap,label_1,score_1,label_2,score_2"
        )
