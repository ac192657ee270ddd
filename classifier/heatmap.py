"""An attribution grid drawn over the image it explains, as a PNG.

>>> png = overlay_png(pixels, grid)   # (crop, crop, 3) uint8 and a 2-D grid with its peak at 1
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

COLORMAP = "inferno"  # perceptually uniform, and readable by most colour-blind viewers
OPACITY = 0.6  # at the top; where the grid is 0 the image shows through untouched
# The top 2% of values all show at full strength, as in Captum's own `visualize_image_attr`
# (outlier_perc=2): pixel-level attributions are peaky, and scaled to their single highest
# value nearly all of them would vanish.
OUTLIER_PERCENT = 2


def overlay_png(pixels: np.ndarray, grid: np.ndarray) -> bytes:
    """`grid` (non-negative) stretched smoothly over `pixels` in COLORMAP, more opaque where
    it is higher."""
    height, width = pixels.shape[:2]
    # a float image resizes without rounding the grid to 256 levels first
    stretched = Image.fromarray(grid.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    heat = np.asarray(stretched)
    top = np.percentile(heat, 100 - OUTLIER_PERCENT)
    heat = np.clip(heat / top if top > 0 else heat, 0.0, 1.0)
    colours = colormaps[COLORMAP](heat)[..., :3]
    alpha = OPACITY * heat[..., np.newaxis]
    blended = (1 - alpha) * (pixels / 255.0) + alpha * colours
    buffer = io.BytesIO()
    Image.fromarray(np.round(blended * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
