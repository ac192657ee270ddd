"""The second shape renderer: geometry of its own, reproducible images, an ImageFolder tree."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train import field_shapes, shapes
from train.field_shapes import LABELS, draw, signed_distance, write_dataset


def area(label: str) -> float:
    """The area inside the shape's signed distance field, in squared radii."""
    step = 0.005
    y, x = np.mgrid[-1.2:1.2:step, -1.2:1.2:step]
    return float((signed_distance(label, x, y, np.random.default_rng(0)) < 0).sum() * step * step)


def test_it_draws_the_training_labels_with_none_of_the_training_code():
    assert set(LABELS) == set(shapes.SHAPES)
    source = Path(field_shapes.__file__).read_text()
    assert "train.shapes" not in source and "ImageDraw" not in source


@pytest.mark.parametrize(
    ("label", "expected"),
    [("circle", math.pi), ("square", 2.0), ("triangle", 3 * math.sqrt(3) / 4)],
)
def test_the_fields_enclose_the_right_areas(label, expected):
    assert area(label) == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("label", LABELS)
def test_the_centre_is_inside_and_far_points_are_outside(label):
    rng = np.random.default_rng(3)
    inside, far = signed_distance(label, np.array([0.0, 3.0]), np.array([0.0, 0.0]), rng)
    assert inside < 0 < far
    assert 1.9 <= far <= 3.0  # no shape reaches further than a cross's corner, under 1.1


def test_a_cross_has_four_arms_and_a_star_five_points():
    half_width = np.random.default_rng(0).uniform(0.25, 0.42)  # the cross's first draw
    assert area("cross") == pytest.approx(8 * half_width - 4 * half_width**2, rel=0.02)
    tips = np.linspace(0, 2 * np.pi, 5, endpoint=False) + np.pi / 2
    valleys = tips + np.pi / 5
    rng = np.random.default_rng
    assert (signed_distance("star", 0.9 * np.cos(tips), 0.9 * np.sin(tips), rng(1)) < 0).all()
    assert (signed_distance("star", 0.9 * np.cos(valleys), 0.9 * np.sin(valleys), rng(1)) > 0).all()


def test_images_are_reproducible_and_varied(tmp_path):
    assert draw("star", seed=5) == draw("star", seed=5)
    assert draw("star", seed=5) != draw("star", seed=6)
    root = write_dataset(tmp_path / "shapes", per_class=4, size=48)
    for label in LABELS:
        files = sorted((root / label).iterdir())
        assert len(files) == 4
        for file in files:
            assert Image.open(io.BytesIO(file.read_bytes())).size == (48, 48)
