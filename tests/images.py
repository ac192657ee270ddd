"""Images the tests make for themselves: photos, odd formats and hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def photo(seed: int = 0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth, photo-like RGB image that differs from seed to seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [
        127
        + 120
        * np.sin(x / rng.uniform(5, 40) + rng.uniform(0, 6))
        * np.cos(y / rng.uniform(5, 40) + rng.uniform(0, 6))
        for _ in range(3)
    ]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg(seed: int = 0, size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(photo(seed, size), "JPEG", quality=90)


def png(seed: int = 0, size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(photo(seed, size), "PNG")


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims width x height pixels: tiny on disk, huge when decoded."""
    row = b"\x00" + b"\x00" * width  # filter byte + one greyscale byte per pixel
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


HOSTILE = {
    # name: (bytes, expected status)
    "empty": (b"", 400),
    "text": (b"hello, this is not an image\n" * 10, 415),
    "html": (b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", 415),
    "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", 415),
    "truncated_jpeg": (jpeg(1)[:600], 422),
    "truncated_png": (png(1)[:300], 422),
    "bomb": (png_bomb(), 413),
}
