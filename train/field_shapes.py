"""Shapes drawn a second, independent way, to measure how well the demo model generalises.

It shares no code with the training renderer (train/shapes.py, PIL polygons at twice the size):
each shape is a signed distance field computed with numpy on a large canvas, shaded with its own
anti-aliasing, filled or hollow with thin or thick outlines, anywhere, any size and angle, on
plain or busy backgrounds, sometimes partly hidden, then scaled down and often JPEG-compressed.

    python -m train.field_shapes DIR --per-class 100      # an ImageFolder tree of them
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from .drawing import draw_all

LABELS = ("circle", "cross", "square", "star", "triangle")
CANVAS = 256  # drawn this large, then scaled down to `size`
DEFAULT_SIZE, DEFAULT_SEED = 64, 1


def polygon(label: str, rng: np.random.Generator) -> np.ndarray:
    """The corners of a polygonal shape around (0, 0): its tips at distance 1 (a cross's arms end
    there; their corners are a little further out)."""
    if label == "cross":
        w = rng.uniform(0.25, 0.42)  # half the width of an arm
        quarter = [(w, 1), (w, w), (1, w)]
        corners = []
        for turn in range(4):  # the same three corners, a quarter turn clockwise each time
            c, s = math.cos(-turn * math.pi / 2), math.sin(-turn * math.pi / 2)
            corners += [(x * c - y * s, x * s + y * c) for x, y in quarter]
        return np.array(corners)
    count, inner = {
        "square": (4, None),
        "triangle": (3, None),
        "star": (5, rng.uniform(0.35, 0.55)),
    }[label]
    angles = np.arange(count) * 2 * np.pi / count + np.pi / 2
    tips = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if inner is None:
        return tips
    valleys = inner * np.stack(
        [np.cos(angles + np.pi / count), np.sin(angles + np.pi / count)], axis=1
    )
    return np.stack([tips, valleys], axis=1).reshape(-1, 2)


def signed_distance(
    label: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Distance from each point to the shape's edge, in shape radii: negative inside."""
    if label == "circle":
        return np.hypot(x, y) - 1
    corners = polygon(label, rng)
    starts, ends = corners, np.roll(corners, -1, axis=0)
    distance = np.full(x.shape, np.inf)
    inside = np.zeros(x.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(starts, ends):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        distance = np.minimum(distance, np.hypot(x - x0 - t * dx, y - y0 - t * dy))
        crosses = (y0 > y) != (y1 > y)  # a ray to the right crosses this edge: flip parity
        inside ^= crosses & (x < x0 + (y - y0) * dx / (dy or 1e-12))
    return np.where(inside, -distance, distance)


def background(rng: np.random.Generator) -> np.ndarray:
    """A plain colour, or a busy scene of stripes, blobs and noise: CANVAS x CANVAS x 3 floats."""
    colour = rng.uniform(0, 255, 3)
    pixels = np.broadcast_to(colour, (CANVAS, CANVAS, 3)).copy()
    if rng.random() < 0.5:
        return pixels
    y, x = np.mgrid[0:CANVAS, 0:CANVAS] / CANVAS
    for _ in range(rng.integers(1, 4)):  # stripes at random angles
        angle, frequency = rng.uniform(0, np.pi), rng.uniform(3, 15)
        wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)))
        pixels += (wave[..., None] > 0) * rng.uniform(-60, 60, 3)
    for _ in range(rng.integers(2, 7)):  # soft blobs
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        pixels += weight[..., None] * rng.uniform(-120, 120, 3)
    return pixels + rng.normal(0, rng.uniform(0, 15), pixels.shape)


def draw(label: str, seed: int, size: int = 64) -> bytes:
    """One image of `label` as JPEG (mostly) or PNG bytes, `size` pixels square."""
    rng = np.random.default_rng(seed)
    pixels = background(rng)
    radius = rng.uniform(0.22, 0.48) * CANVAS
    cx, cy = rng.uniform(radius * 0.8, CANVAS - radius * 0.8, 2)  # up to a fifth may leave
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:CANVAS, 0:CANVAS] + 0.5
    u, v = (x - cx) / radius, (y - cy) / radius
    u, v = u * np.cos(angle) + v * np.sin(angle), -u * np.sin(angle) + v * np.cos(angle)
    edge = signed_distance(label, u, v, rng) * radius  # in canvas pixels
    if rng.random() < 0.5:
        coverage = np.clip(0.5 - edge, 0, 1)  # filled, anti-aliased over one pixel
    else:
        thickness = radius * rng.uniform(0.05, 0.3)  # thin to thick outlines
        coverage = np.clip(0.5 - (np.abs(edge) - thickness / 2), 0, 1)
    ink = (pixels.mean(axis=(0, 1)) + rng.choice([-1, 1], 3) * rng.uniform(90, 160, 3)) % 256
    pixels = pixels * (1 - coverage[..., None]) + ink * coverage[..., None]
    if rng.random() < 0.3:  # part of the shape hidden behind a bar across the picture
        across = rng.uniform(0, np.pi)
        offset = (
            (x - cx) * np.sin(across) - (y - cy) * np.cos(across) - rng.uniform(-0.7, 0.7) * radius
        )
        pixels[np.abs(offset) < radius * rng.uniform(0.08, 0.25)] = rng.uniform(0, 255, 3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    if rng.random() < 0.7:
        image.save(buffer, "JPEG", quality=int(rng.integers(25, 90)))
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def write_dataset(
    root: Path,
    per_class: int,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    processes: int | None = None,
) -> Path:
    """An ImageFolder tree: root/<label>/<n>.jpg or .png, drawn on every core."""
    jobs = []
    for index, label in enumerate(LABELS):
        folder = Path(root) / label
        folder.mkdir(parents=True, exist_ok=True)
        jobs += [
            (folder, label, (seed * 7919 + index) * 1_000_003 + n, n, size)
            for n in range(per_class)
        ]
    draw_all(jobs, _write, desc="drawing field shapes", processes=processes)
    return Path(root)


def _write(job: tuple) -> None:
    folder, label, seed, n, size = job
    data = draw(label, seed=seed, size=size)
    suffix = ".jpg" if data[:2] == b"\xff\xd8" else ".png"
    (folder / f"{n:05d}{suffix}").write_bytes(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    write_dataset(args.root, args.per_class, args.size, args.seed)


if __name__ == "__main__":
    main()
