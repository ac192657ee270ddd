"""JPEG photographs of mixed sizes, made up on the spot: the benchmark's inputs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = [(640, 480), (1024, 768), (1280, 960), (1920, 1080), (3000, 2000), (4000, 3000)]


def photo(seed: int, size: tuple[int, int]) -> bytes:
    """A camera-like JPEG: smooth light, a few objects, texture and sensor noise, quality 90."""
    rng = np.random.default_rng(seed)
    width, height = size
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)  # a blurry colour field as light
    image = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.03, 0.25) * min(size)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = [x - r, y - r, x + r, y + r]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(min(size) / 400))
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, 6, pixels.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def photos(count: int = 24, seed: int = 0) -> list[bytes]:
    """`count` photos cycling through SIZES, from 640x480 to 4000x3000."""
    return [photo(seed + i, SIZES[i % len(SIZES)]) for i in range(count)]
