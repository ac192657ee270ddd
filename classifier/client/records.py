"""One record per file, written as JSON Lines or CSV as answers arrive, and read back to resume."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ValidationError

# what the service says about an image itself (empty, not an image, corrupt, too large)
IMAGE_ERROR_STATUSES = frozenset({400, 413, 415, 422})


class Prediction(BaseModel):
    label: str
    score: float


class Record(BaseModel):
    """A file's answer (`predictions`) or why it has none (`error`, with the HTTP `status` the
    service gave, or none when no answer came)."""

    path: str
    model: str | None = None
    predictions: list[Prediction] | None = None
    error: str | None = None
    status: int | None = None

    @property
    def final(self) -> bool:
        """The service's last word on this file (its answer, or what is wrong with the image):
        sending it again would change nothing."""
        if self.predictions is not None:
            return True
        return self.status in IMAGE_ERROR_STATUSES


class RecordWriter:
    """Appends records to a .jsonl or .csv file, one line each, flushed as it goes: a run that is
    stopped leaves every answer it received, and at worst a torn last line."""

    def __init__(self, path: Path, top_k: int, kept: list[Record] = ()) -> None:
        self.path, self.top_k = path, top_k
        self.csv = output_format(path) == "csv"
        # rewrite what is kept (final answers only) first, to a new file: an interruption now
        # loses nothing
        partial = path.with_name(path.name + ".partial")
        self.file: TextIO = partial.open(
            "w", encoding="utf-8", errors="surrogateescape", newline="" if self.csv else None
        )
        self.writer = csv.writer(self.file) if self.csv else None
        if self.writer:
            self.writer.writerow(csv_header(top_k))
        for record in kept:
            self.write(record)
        os.replace(partial, path)

    def write(self, record: Record) -> None:
        if self.writer:
            self.writer.writerow(csv_row(record, self.top_k))
        else:
            self.file.write(record.model_dump_json(exclude_none=True) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def output_format(path: Path) -> str:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def csv_header(top_k: int) -> list[str]:
    ranks = [name for rank in range(1, top_k + 1) for name in (f"label_{rank}", f"score_{rank}")]
    return ["path", "status", "error", "model", *ranks]


def csv_row(record: Record, top_k: int) -> list:
    ranks = []
    for prediction in (record.predictions or [])[:top_k]:
        ranks += [prediction.label, f"{prediction.score:.6f}"]
    return [record.path, record.status or "", record.error or "", record.model or "", *ranks]


def read_records(path: Path) -> list[Record]:
    """The records in an output file, the last one for each path; a torn last line, the one a
    stopped run was writing, is left out."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    text = text[: text.rfind("\n") + 1]
    records: dict[str, Record] = {}
    if output_format(path) == "csv":
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, None)
        for row in rows:
            if header and (record := _from_csv(row)) is not None:
                records[record.path] = record
    else:
        for line in text.splitlines():
            try:
                record = Record.model_validate_json(line)
            except ValidationError:
                continue
            records[record.path] = record
    return list(records.values())


def _from_csv(row: list[str]) -> Record | None:
    if len(row) < 4:
        return None
    path, status, error, model, *ranks = row
    try:
        predictions = [
            Prediction(label=label, score=float(score))
            for label, score in zip(ranks[0::2], ranks[1::2])
        ]
        return Record(
            path=path,
            status=int(status) if status else None,
            error=error or None,
            model=model or None,
            predictions=predictions if not error else None,
        )
    except (ValueError, ValidationError):
        return None
