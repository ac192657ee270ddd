"""Explanations: the method each input size gets, Grad-CAM as the paper defines it, integrated
gradients that leave flat backgrounds out, and the heatmap drawn over the image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.explanation import Explainer
from classifier.heatmap import overlay_png
from classifier.testing.models import random_model


def pixels_with_a_square(crop: int, corner: int = 12) -> np.ndarray:
    """A flat grey image with a dark square near the top-left corner."""
    pixels = np.full((crop, crop, 3), 200, np.uint8)
    pixels[4 : 4 + corner, 4 : 4 + corner] = (20, 40, 160)
    return pixels


def test_at_224_pixels_grad_cam_on_the_7x7_last_stage_as_the_paper_defines_it():
    model, card = random_model(image_size=224)
    explainer = Explainer(model, card)
    assert explainer.method == "grad-cam" and explainer.describe() == "Grad-CAM on layer4 (7x7)"
    pixels = pixels_with_a_square(224, 60)
    attribution = explainer.explain(pixels, index=2)
    assert attribution.method == "grad-cam" and attribution.layer == "layer4"
    assert attribution.grid.shape == (7, 7)

    # by hand: the class score's gradients, averaged over the map, weigh layer4's channels
    features = {}
    model.layer4.register_forward_hook(lambda module, args, output: features.update(map=output))
    inputs = card.preprocessing.normalize(pixels[np.newaxis])
    score = model(inputs)[0, 2]
    [gradients] = torch.autograd.grad(score, features["map"])
    cam = (gradients.mean((2, 3), keepdim=True) * features["map"]).sum(1)[0].clamp(min=0)
    expected = (cam / cam.max()).detach().numpy() if cam.max() > 0 else cam.detach().numpy()
    np.testing.assert_allclose(attribution.grid, expected, atol=1e-4)


def test_on_small_inputs_integrated_gradients_per_pixel_and_none_on_a_flat_background():
    model, card = random_model(image_size=64)
    explainer = Explainer(model, card)
    assert explainer.method == "integrated-gradients"
    assert "layer4 is 2x2, too coarse" in explainer.describe()
    attribution = explainer.explain(pixels_with_a_square(64), index=0)
    grid = attribution.grid
    assert attribution.layer is None and grid.shape == (64, 64) and grid.dtype == np.float32
    assert grid.min() >= 0 and grid.max() == pytest.approx(1)
    # the far corner is as flat as its blurred copy: it can take no credit
    assert grid[40:, 40:].max() < 1e-3 * grid.max()
    assert grid[:24, :24].sum() > 0.9 * grid.sum()


def test_explaining_leaves_the_model_as_it_was():
    model, card = random_model(image_size=64)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    Explainer(model, card).explain(pixels_with_a_square(64), index=1)
    assert not model.training
    assert all(parameter.grad is None for parameter in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_the_heatmap_is_the_image_where_nothing_counted_and_colour_where_it_did():
    pixels = pixels_with_a_square(48)
    grid = np.zeros((6, 6), np.float32)
    grid[0, 0] = 1.0
    heatmap = np.asarray(Image.open(io.BytesIO(overlay_png(pixels, grid))).convert("RGB"))
    assert heatmap.shape == pixels.shape
    assert np.array_equal(heatmap[24:, 24:], pixels[24:, 24:])
    assert np.abs(heatmap[:4, :4].astype(int) - pixels[:4, :4]).sum() > 0


def test_at_bf16_the_attributions_are_those_of_fp32():
    model, card = random_model(image_size=64)
    pixels = pixels_with_a_square(64)
    full = Explainer(model, card).explain(pixels, index=0).grid
    half = Explainer(model.to(torch.bfloat16), card).explain(pixels, index=0).grid
    assert np.corrcoef(full.ravel(), half.ravel())[0, 1] > 0.9
