"""Preprocessing: what the model sees, derived from torchvision's weights, never hand-written.

It is split in two so that the expensive part overlaps inference: `prepare` (resize and
centre crop, per request, in the request's thread) gives uint8 pixels; `normalize` (scale,
mean, std, per batch, next to the model) gives the float tensor. Together they equal
`weights.transforms()`:

    >>> spec = Preprocessing.from_weights(ResNet50_Weights.IMAGENET1K_V2)
    >>> batch = spec.normalize(np.stack([spec.prepare(image)]))

torch and torchvision are imported by the methods that use them: the request schemas carry a
`Preprocessing`, and `bentoml serve` imports them in a process that never runs the model, where
importing torchvision (and the compiler it brings) took 7 of a start's 19 s on a Zen 3.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from .ingest import load_image

if TYPE_CHECKING:
    import torch

# Images longer than this many times their short side are trimmed before resizing; the
# centre crop would discard the trimmed part anyway, and a 10000x1 image would otherwise be
# resized to 2320000x232.
MAX_ASPECT_RATIO = 4.0


class Preprocessing(BaseModel):
    """Resize the short side to `resize_size`, centre-crop `crop_size`, normalise mean/std."""

    model_config = ConfigDict(frozen=True)

    resize_size: int = Field(gt=0)
    crop_size: int = Field(gt=0)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    @classmethod
    def from_weights(cls, weights) -> Preprocessing:
        """Read the settings of a torchvision `Weights` enum member's own `transforms()`."""
        transforms = weights.transforms()
        return cls(
            resize_size=transforms.resize_size[0],
            crop_size=transforms.crop_size[0],
            mean=tuple(transforms.mean),
            std=tuple(transforms.std),
            interpolation=transforms.interpolation.value,
        )

    def at_size(self, crop_size: int) -> Preprocessing:
        """The same recipe for another input size, keeping the resize-to-crop ratio."""
        resize_size = round(crop_size * self.resize_size / self.crop_size)
        return self.model_copy(update={"crop_size": crop_size, "resize_size": resize_size})

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop an RGB image to a (crop, crop, 3) uint8 array."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        image = _trim_extreme_aspect(image)
        image = F.resize(
            image,
            [self.resize_size],
            interpolation=InterpolationMode(self.interpolation),
            antialias=True,
        )
        image = F.center_crop(image, [self.crop_size])
        return np.array(image, dtype=np.uint8)  # a writable copy, as torch wants

    def prepare_bytes(self, data: bytes, *, max_pixels: int, fast_jpeg: bool = True) -> np.ndarray:
        """Untrusted encoded bytes to (crop, crop, 3) uint8 pixels; `InvalidImage` if unusable.

        `fast_jpeg` lets a large JPEG decode at reduced scale, never below `resize_size`.
        """
        image = load_image(
            data, max_pixels=max_pixels, min_short_side=self.resize_size if fast_jpeg else None
        )
        return self.prepare(image)

    def normalize(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 pixels to the model's (N, 3, H, W) float32 input."""
        import torch
        from torchvision.transforms.v2 import functional as F

        batch = torch.as_tensor(pixels).permute(0, 3, 1, 2).float().div_(255.0)
        return F.normalize(batch, mean=list(self.mean), std=list(self.std))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """One image to a (3, H, W) float tensor, as `weights.transforms()` would give."""
        return self.normalize(self.prepare(image)[None])[0]


def _trim_extreme_aspect(image: Image.Image) -> Image.Image:
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if long <= MAX_ASPECT_RATIO * short:
        return image
    keep = math.ceil(MAX_ASPECT_RATIO * short)
    start = (long - keep) // 2
    box = (start, 0, start + keep, height) if width > height else (0, start, width, start + keep)
    return image.crop(box)
