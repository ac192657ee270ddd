"""Preprocessing equals torchvision's own `weights.transforms()`, split for batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights

from classifier.ingest import load_image
from classifier.preprocess import Preprocessing
from tests import images

WEIGHTS = ResNet50_Weights.IMAGENET1K_V2


def test_settings_come_from_the_weights():
    spec = Preprocessing.from_weights(WEIGHTS)
    assert (spec.resize_size, spec.crop_size) == (232, 224)
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert spec.interpolation == "bilinear"
    v1 = Preprocessing.from_weights(ResNet50_Weights.IMAGENET1K_V1)
    assert (v1.resize_size, v1.crop_size) == (256, 224)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (300, 300), (1920, 1080)])
def test_same_tensor_as_the_weights_transforms(size):
    image = images.photo(seed=3, size=size)
    ours = Preprocessing.from_weights(WEIGHTS)(image)
    reference = WEIGHTS.transforms()(image)
    assert ours.shape == reference.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_prepare_gives_uint8_pixels_and_normalize_a_batch():
    spec = Preprocessing.from_weights(WEIGHTS)
    pixels = np.stack([spec.prepare(images.photo(seed)) for seed in range(3)])
    assert pixels.shape == (3, 224, 224, 3) and pixels.dtype == np.uint8
    batch = spec.normalize(pixels)
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == torch.float32


def test_at_size_keeps_the_recipe_ratio():
    small = Preprocessing.from_weights(WEIGHTS).at_size(64)
    assert (small.resize_size, small.crop_size) == (66, 64)
    assert small.prepare(images.photo()).shape == (64, 64, 3)


@pytest.mark.parametrize("size", [(10000, 1), (1, 10000), (5000, 3)])
def test_extreme_aspect_ratios_stay_small(size):
    spec = Preprocessing.from_weights(WEIGHTS)
    assert spec.prepare(Image.new("RGB", size, "blue")).shape == (224, 224, 3)


@pytest.mark.parametrize("size", [(4000, 3000), (1080, 1920)])
def test_reduced_jpeg_decoding_sees_nearly_the_same_pixels(size):
    spec = Preprocessing.from_weights(WEIGHTS)
    data = images.jpeg(seed=2, size=size)
    full = load_image(data, max_pixels=40_000_000)
    reduced = load_image(data, max_pixels=40_000_000, min_short_side=spec.resize_size)
    assert min(reduced.size) >= spec.resize_size and reduced.size[0] < full.size[0]
    difference = np.abs(spec.prepare(full).astype(int) - spec.prepare(reduced).astype(int))
    assert difference.mean() < 3 and difference.max() < 40


def test_reduced_decoding_leaves_small_and_non_jpeg_images_alone():
    small = load_image(images.jpeg(size=(200, 150)), max_pixels=10**7, min_short_side=232)
    png = load_image(images.png(size=(1200, 900)), max_pixels=10**7, min_short_side=232)
    assert small.size == (200, 150) and png.size == (1200, 900)


def test_prepare_bytes_is_load_then_prepare():
    spec = Preprocessing.from_weights(WEIGHTS)
    data = images.jpeg(seed=4, size=(1600, 1200))
    fast = spec.prepare_bytes(data, max_pixels=10**7)
    exact = spec.prepare_bytes(data, max_pixels=10**7, fast_jpeg=False)
    reduced = load_image(data, max_pixels=10**7, min_short_side=spec.resize_size)
    assert np.array_equal(fast, spec.prepare(reduced))
    assert np.array_equal(exact, spec.prepare(load_image(data, max_pixels=10**7)))
