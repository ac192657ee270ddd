"""Which files to send: every file named, and the image files (by content) in the folders named."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image

from classifier.ingest import image_signature


def find_images(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as named (so that the service says why one is not an image), and folders searched
    recursively, in name order, for files whose content is an image, whatever their names."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and looks_like_an_image(file):
                    yield file
        else:
            yield path


def looks_like_an_image(path: Path) -> bool:
    """Starts like an image (even a corrupt one, which the service will describe), or Pillow
    knows its format from the header alone."""
    try:
        with path.open("rb") as file:
            if image_signature(file.read(16)) is not None:
                return True
        with Image.open(path):
            return True
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is not an image here
        return False
