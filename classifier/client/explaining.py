"""--explain: where each file's heatmap PNG goes, and saving it whole, never over another's."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .records import Record


@dataclass
class Explaining:
    """Send each file to /explain, for `label` (None: the top one), and save its heatmap at
    `heatmaps[str(path)]`."""

    heatmaps: dict[str, Path]
    label: str | None = None

    def record(self, path: Path, answer: dict) -> Record:
        """The file's record from an /explain answer, once its heatmap is saved; ValueError
        (or KeyError, TypeError) when the answer is not one."""
        explanation = answer["explanation"]
        png = base64.b64decode(explanation["heatmap_png"], validate=True)
        heatmap = self.heatmaps[str(path)]
        record = Record(
            path=str(path),
            model=answer.get("model"),
            predictions=answer["predictions"],
            status=200,
            explained=answer["explained"]["label"],
            method=explanation["method"],
        )
        try:
            save(heatmap, png)
        except OSError as error:  # not final: --resume sends it again
            return Record(path=str(path), error=f"cannot save {heatmap}: {error.strerror}")
        return record.model_copy(update={"heatmap": str(heatmap)})

    def done(self, record: Record) -> bool:
        """Whether a final record from an earlier run (--resume) needs no new request: the
        service's word on the image itself, or its explanation, of the label this run asks for
        (any, without --label), with the heatmap where this run puts it, still there."""
        if record.predictions is None:
            return True
        if self.label is not None and record.explained != self.label:
            return False
        heatmap = self.heatmaps.get(record.path)
        return heatmap is not None and record.heatmap == str(heatmap) and heatmap.is_file()


def heatmap_paths(paths: Iterable[Path], roots: Iterable[Path], folder: Path) -> dict[str, Path]:
    """Where each file's heatmap goes: under `folder`, at its path relative to the folder it was
    found in (a file named on its own: at its name), with the suffix .png. A name already given
    to another file (b.jpg and b.png; the same path under two folders; names that differ only in
    case, for case-insensitive file systems) gets the file's full name (b.jpg.png), then a number
    (b-2.png). Files in the same order get the same names: --resume relies on it."""
    folders = [root for root in roots if root.is_dir()]
    taken: set[str] = set()
    heatmaps: dict[str, Path] = {}
    for path in paths:
        if str(path) in heatmaps:
            continue
        root = next((root for root in folders if path.is_relative_to(root)), path.parent)
        relative = path.relative_to(root)
        candidates = [relative.with_suffix(""), relative]
        candidates += (relative.with_name(f"{relative.stem}-{n}") for n in range(2, len(taken) + 3))
        for candidate in candidates:
            heatmap = folder / f"{candidate}.png"
            if str(heatmap).casefold() not in taken:
                break
        taken.add(str(heatmap).casefold())
        heatmaps[str(path)] = heatmap
    return heatmaps


def save(path: Path, png: bytes) -> None:
    """Write the PNG whole or not at all: a run stopped midway leaves no torn image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(png)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
