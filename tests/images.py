"""Images the tests make for themselves: photos, odd formats and hostile files."""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw


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


def shape_in_corner(shape: str, corner: int, size: int = 240, side: int = 100) -> Image.Image:
    """One filled shape (a demo label) in corner 0-3 (clockwise from the top left) of an
    otherwise empty white canvas."""
    left = 12 if corner in (0, 3) else size - 12 - side
    top = 12 if corner in (0, 1) else size - 12 - side
    centre_x, centre_y, radius = left + side / 2, top + side / 2, side / 2
    image = Image.new("RGB", (size, size), "white")
    draw, colour = ImageDraw.Draw(image), (30, 60, 200)
    if shape == "circle":
        draw.ellipse([left, top, left + side, top + side], fill=colour)
    elif shape == "square":
        draw.rectangle([left + 10, top + 10, left + side - 10, top + side - 10], fill=colour)
    elif shape == "triangle":
        draw.polygon([(centre_x, top), (left, top + side), (left + side, top + side)], fill=colour)
    elif shape == "cross":
        arm = side / 6
        draw.rectangle([centre_x - arm, top, centre_x + arm, top + side], fill=colour)
        draw.rectangle([left, centre_y - arm, left + side, centre_y + arm], fill=colour)
    elif shape == "star":
        points = [
            (
                centre_x + (radius if i % 2 == 0 else radius * 0.4) * math.sin(i * math.pi / 5),
                centre_y - (radius if i % 2 == 0 else radius * 0.4) * math.cos(i * math.pi / 5),
            )
            for i in range(10)
        ]
        draw.polygon(points, fill=colour)
    else:
        raise ValueError(f"no such shape: {shape}")
    return image


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


def garbled(data: bytes, start: int, length: int = 64) -> bytes:
    """`data` with `length` bytes from `start` inverted: corrupt, same size."""
    damaged = bytearray(data)
    for i in range(start, min(start + length, len(damaged))):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def _formats() -> dict[str, bytes]:
    picture = photo(1)
    return {
        "jpeg": encode(picture, "JPEG", quality=90),
        "png": encode(picture, "PNG"),
        "gif": encode(picture.convert("P"), "GIF"),
        "webp": encode(picture, "WEBP"),
    }


def _broken() -> dict[str, tuple[bytes, int]]:
    broken = {}
    for name, data in _formats().items():
        broken[f"truncated_{name}"] = (data[: len(data) // 2], 422)
        broken[f"{name}_header_only"] = (data[:40], 422)
        # 512 bytes of the middle: too much for JPEG's resynchronisation to skip; WebP's decoder
        # gets through any damage to its frame data, so its damage goes in the header instead
        start = 20 if name == "webp" else len(data) // 2
        broken[f"corrupt_{name}"] = (garbled(data, start, 512), 422)
    return broken


# Damaged, but the decoder gets through: a legal image, answered 200.
RECOVERABLE = {"webp_frame_damaged": garbled(_formats()["webp"], 3000, 512)}


HOSTILE = {
    # name: (bytes, expected status)
    "empty": (b"", 400),
    "text": (b"hello, this is not an image\n" * 10, 415),
    "html": (b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", 415),
    "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", 415),
    "truncated_jpeg_early": (jpeg(1)[:600], 422),
    "truncated_png_early": (png(1)[:300], 422),
    **_broken(),
    "bomb": (png_bomb(), 413),
    "wide_bomb": (png_bomb(200_000, 300), 413),
}
