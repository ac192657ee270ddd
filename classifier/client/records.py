"""One record per file, written as JSON Lines or CSV as answers arrive, and read back to resume."""

from __future__ import annotations

import csv
import io
import itertools
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
    service gave, or none when no answer came). From /explain, also the label `explained`, the
    `method` and where its `heatmap` PNG was saved."""

    path: str
    model: str | None = None
    predictions: list[Prediction] | None = None
    error: str | None = None
    status: int | None = None
    explained: str | None = None
    method: str | None = None
    heatmap: str | None = None

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

    def __init__(
        self, path: Path, top_k: int, kept: list[Record] = (), explaining: bool = False
    ) -> None:
        self.path, self.top_k = path, top_k
        self.columns = csv_header(top_k, explaining)
        self.csv = output_format(path) == "csv"
        # rewrite what is kept (final answers only) first, to a new file: an interruption now
        # loses nothing
        partial = path.with_name(path.name + ".partial")
        self.file: TextIO = partial.open(
            "w", encoding="utf-8", errors="surrogateescape", newline="" if self.csv else None
        )
        self.writer = csv.writer(self.file) if self.csv else None
        if self.writer:
            self.writer.writerow(self.columns)
        for record in kept:
            self.write(record)
        os.replace(partial, path)

    def write(self, record: Record) -> None:
        if self.writer:
            self.writer.writerow(csv_row(record, self.columns))
        else:
            self.file.write(record.model_dump_json(exclude_none=True) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def output_format(path: Path) -> str:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def csv_header(top_k: int, explaining: bool = False) -> list[str]:
    ranks = [name for rank in range(1, top_k + 1) for name in (f"label_{rank}", f"score_{rank}")]
    explained = ["explained", "method", "heatmap"] if explaining else []
    return ["path", "status", "error", "model", *explained, *ranks]


def csv_row(record: Record, columns: list[str]) -> list:
    """The record's values in `columns` (csv_header's): empty where it has none."""
    values = record.model_dump(exclude={"predictions"})
    for rank, prediction in enumerate(record.predictions or [], start=1):
        values[f"label_{rank}"] = prediction.label
        values[f"score_{rank}"] = f"{prediction.score:.6f}"
    return ["" if values.get(column) is None else values[column] for column in columns]


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
            if header and (record := _from_csv(dict(zip(header, row)))) is not None:
                records[record.path] = record
    else:
        for line in text.splitlines():
            try:
                record = Record.model_validate_json(line)
            except ValidationError:
                continue
            records[record.path] = record
    return list(records.values())


def _from_csv(row: dict[str, str]) -> Record | None:
    """A record from a CSV row (column: value); None for a row cut short."""
    if not {"path", "status", "error", "model"} <= set(row):
        return None
    predictions = []
    for rank in itertools.count(1):
        label, score = row.get(f"label_{rank}"), row.get(f"score_{rank}")
        if not label or score is None:
            break
        predictions.append((label, score))
    try:
        return Record(
            path=row["path"],
            status=int(row["status"]) if row["status"] else None,
            error=row["error"] or None,
            model=row["model"] or None,
            predictions=None
            if row["error"]
            else [Prediction(label=label, score=float(score)) for label, score in predictions],
            explained=row.get("explained") or None,
            method=row.get("method") or None,
            heatmap=row.get("heatmap") or None,
        )
    except (ValueError, ValidationError):
        return None
