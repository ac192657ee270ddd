"""Render geometric shapes for the offline demo model, in a training style and held-out styles.

Training images are clean filled or outlined shapes on plain, gradient or noisy backgrounds.
The held-out styles (`sketch`: wobbly multi-stroke pencil lines on paper; `striped`: hatched
fills) are never trained on; they measure whether the model learned shapes, not a drawing style.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "star", "cross")
TRAIN_STYLES = ("filled", "outline")
HELD_OUT_STYLES = ("sketch", "striped")
SUPERSAMPLE = 2  # draw at twice the size, then downsample, for smooth edges


def outline(shape: str, center: tuple[float, float], radius: float, angle: float, rng) -> list:
    """The shape's boundary as (x, y) points; a circle is a fine polygon."""
    cx, cy = center
    if shape == "circle":
        corners, radii = 72, [radius]
    elif shape == "square":
        corners, radii = 4, [radius]
    elif shape == "triangle":
        corners, radii = 3, [radius]
    elif shape == "star":
        corners, radii = 10, [radius, radius * rng.uniform(0.38, 0.5)]
    elif shape == "cross":
        arm = radius * rng.uniform(0.28, 0.4)
        points = [(arm, radius), (arm, arm), (radius, arm), (radius, -arm), (arm, -arm),
                  (arm, -radius), (-arm, -radius), (-arm, -arm), (-radius, -arm),
                  (-radius, arm), (-arm, arm), (-arm, radius)]  # fmt: skip
        cos, sin = math.cos(angle), math.sin(angle)
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return [
        (
            cx + radii[i % len(radii)] * math.cos(angle + 2 * math.pi * i / corners),
            cy + radii[i % len(radii)] * math.sin(angle + 2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]


def render(shape: str, style: str, size: int = 64, seed: int | None = None) -> Image.Image:
    """One RGB image of `shape` drawn in `style`, with random colours, size, place and angle."""
    rng = random.Random(seed)
    canvas = size * SUPERSAMPLE
    background, ink = _colours(rng, paper=style == "sketch")
    image = _background(canvas, background, rng, plain=style == "sketch")
    draw = ImageDraw.Draw(image)
    radius = canvas * rng.uniform(0.28, 0.45)
    margin = radius + canvas * 0.03
    center = (rng.uniform(margin, canvas - margin), rng.uniform(margin, canvas - margin))
    points = outline(shape, center, radius, rng.uniform(0, 2 * math.pi), rng)
    line = max(2, round(canvas * rng.uniform(0.02, 0.06)))
    if style == "filled":
        draw.polygon(points, fill=ink)
    elif style == "outline":
        draw.line([*points, points[0], points[1]], fill=ink, width=line, joint="curve")
    elif style == "sketch":
        for _ in range(rng.randint(2, 3)):
            wobbly = [
                (x + rng.gauss(0, canvas * 0.012), y + rng.gauss(0, canvas * 0.012))
                for x, y in _densify(points, canvas * 0.04)
            ]
            draw.line([*wobbly, wobbly[0]], fill=ink, width=max(1, line // 2))
    elif style == "striped":
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).polygon(points, fill=255)
        stripes = Image.new("RGB", image.size, background)
        stripe_draw = ImageDraw.Draw(stripes)
        step = max(4, round(canvas * rng.uniform(0.05, 0.09)))
        for offset in range(-canvas, 2 * canvas, step):
            stripe_draw.line([(offset, 0), (offset + canvas, canvas)], fill=ink, width=step // 2)
        image.paste(stripes, mask=mask)
        draw.line([*points, points[0]], fill=ink, width=max(1, line // 2))
    else:
        raise ValueError(f"unknown style {style!r}")
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return image


def write_dataset(root: Path, per_class: int, styles=TRAIN_STYLES, size: int = 64, seed: int = 0):
    """Write an ImageFolder tree root/<shape>/<n>.png; returns root."""
    root = Path(root)
    for label, shape in enumerate(SHAPES):
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            style = styles[n % len(styles)]
            render(shape, style, size, seed=(seed * len(SHAPES) + label) * 1_000_003 + n).save(
                folder / f"{n:05d}.png"
            )
    return root


def _colours(rng: random.Random, paper: bool) -> tuple[tuple, tuple]:
    if paper:
        shade = rng.randint(215, 250)
        return (shade, shade - rng.randint(0, 12), shade - rng.randint(0, 25)), tuple(
            rng.randint(10, 80) for _ in range(3)
        )
    while True:
        background = tuple(rng.randint(0, 255) for _ in range(3))
        ink = tuple(rng.randint(0, 255) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(background, ink)) > 200:
            return background, ink


def _background(canvas: int, colour: tuple, rng: random.Random, plain: bool) -> Image.Image:
    kind = "noise" if plain else rng.choice(("plain", "gradient", "noise"))
    base = np.full((canvas, canvas, 3), colour, dtype=np.float32)
    if kind == "gradient":
        other = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
        ramp = np.linspace(0, 0.5, canvas, dtype=np.float32)[:, None, None]
        base = base * (1 - ramp) + other * ramp
        if rng.random() < 0.5:
            base = base.transpose(1, 0, 2)
    elif kind == "noise":
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 12, (canvas, canvas, 1))
        base = base + noise.astype(np.float32)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def _densify(points: list, spacing: float) -> list:
    """Extra points along each edge, so that a wobble bends edges rather than moving corners."""
    dense = []
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / spacing))
        dense.extend((x0 + (x1 - x0) * t / steps, y0 + (y1 - y0) * t / steps) for t in range(steps))
    return dense
