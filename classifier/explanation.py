"""Where the model looked: Captum attributions for one prepared image and one label.

>>> explainer = Explainer(predictor.model, card)      # the eager model, on its device
>>> explainer.method                                   # "grad-cam" at 224, else pixel-level
>>> attribution = explainer.explain(pixels, index=3)  # (crop, crop, 3) uint8
>>> attribution.grid                                   # 2-D, non-negative, its peak is 1

Grad-CAM (Selvaraju et al.) weighs the last convolutional stage's feature maps by their
gradients: a coarse map, 7x7 for ResNet50 at 224 pixels, that follows objects rather than pixel
noise. On small inputs that stage is too coarse to point at anything (2x2 for the 64-pixel demo),
so the pixel-level answer is integrated gradients (Sundararajan et al.) from a blurred copy of
the image: how much each pixel's detail, beyond the blur, raised the label's score.
A blurred baseline rather than black keeps flat backgrounds, which are their own blur, from
taking credit for a colour the model barely uses (Sturmfels et al., "Visualizing the Impact of
Feature Attribution Baselines", Distill 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as F

from .artifact import ModelCard
from .schemas import ExplanationMethod

# Grad-CAM's grid must be at least this fine to place anything (ImageNet's 224 gives 7x7)
MIN_GRAD_CAM_SIZE = 7
# Integrated gradients: steps along the path from the baseline, and the baseline's blur as a
# share of the image's side. The steps run in batches of at most this many pixels in all (32 of
# the demo's 64x64 in one): a fine-tuned model at 192 pixels would otherwise hold the
# activations of 32 images at once for the backward pass, gigabytes.
INTEGRATION_STEPS = 32
BLUR_SHARE = 1 / 8
PIXELS_PER_BATCH = 32 * 64 * 64
# fp16 has too little range for the gradients of a score of about 10 reaching back to the
# input (1e-5 and smaller underflow): the score is scaled up first, as in mixed-precision
# training's loss scaling. Attributions are linear in it, and scaled to a peak of 1 anyway.
FP16_SCORE_SCALE = 1024.0


@dataclass(frozen=True)
class Attribution:
    """One label's attribution for one image."""

    method: ExplanationMethod
    layer: str | None  # the layer Grad-CAM read, None for pixel-level methods
    grid: np.ndarray  # (rows, columns) float32, non-negative, peak 1 (all 0 if nothing counted)


class Explainer:
    """Attributions from a torchvision ResNet, at its precision, on its device.

    `model` is the eager module (gradients do not go through a compiled graph); its parameters
    are left as they are and get no gradients: only the input's and a layer's are computed.
    """

    def __init__(self, model: nn.Module, card: ModelCard) -> None:
        self.model = model
        self.card = card
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.score_scale = FP16_SCORE_SCALE if self.dtype == torch.float16 else 1.0
        self.layer_name = "layer4"
        self.last_stage_size = self._output_size(getattr(model, self.layer_name))
        self.method: ExplanationMethod = (
            "grad-cam" if self.last_stage_size >= MIN_GRAD_CAM_SIZE else "integrated-gradients"
        )

    def describe(self) -> str:
        size = f"{self.last_stage_size}x{self.last_stage_size}"
        if self.method == "grad-cam":
            return f"Grad-CAM on {self.layer_name} ({size})"
        return (
            f"integrated gradients from a blurred copy of the image ({self.layer_name} is "
            f"{size}, too coarse for Grad-CAM)"
        )

    def explain(self, pixels: np.ndarray, index: int) -> Attribution:
        """Where the model looked for class `index` in (crop, crop, 3) uint8 `pixels`."""
        # imported here, not with the module: `bentoml serve`'s own process imports the service
        # and never explains, and Captum costs it 0.7 s of every start
        from captum.attr import IntegratedGradients, LayerGradCam

        inputs = self.card.preprocessing.normalize(pixels[np.newaxis]).to(self.device)
        with torch.enable_grad():
            if self.method == "grad-cam":
                layer = getattr(self.model, self.layer_name)
                # the ReLU keeps what speaks for the label, as in the Grad-CAM paper
                attributions = LayerGradCam(self._forward, layer).attribute(
                    inputs, target=index, relu_attributions=True
                )
                return Attribution(self.method, self.layer_name, _peak_one(attributions[0, 0]))
            side = inputs.shape[-1]
            sigma = max(side * BLUR_SHARE, 1.0)
            kernel = 2 * round(2 * sigma) + 1
            baseline = F.gaussian_blur(inputs, [kernel, kernel], [sigma, sigma])
            attributions = IntegratedGradients(self._forward).attribute(
                inputs,
                baselines=baseline,
                target=index,
                n_steps=INTEGRATION_STEPS,
                internal_batch_size=max(1, min(INTEGRATION_STEPS, PIXELS_PER_BATCH // side**2)),
            )
            # a pixel counts by how much it raised the label's score, over its channels; what
            # lowered it is not where the model looked for the label (Grad-CAM's ReLU, likewise)
            return Attribution(self.method, None, _peak_one(attributions[0].sum(0)))

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Float inputs (Captum's interpolations and blurs stay float) at the model's precision;
        float32 logits, so that gradients of the score start from full precision."""
        memory_format = torch.channels_last if inputs.dim() == 4 else torch.contiguous_format
        inputs = inputs.to(self.dtype).contiguous(memory_format=memory_format)
        return self.model(inputs).float() * self.score_scale

    def _output_size(self, layer: nn.Module) -> int:
        sizes: list[int] = []
        handle = layer.register_forward_hook(
            lambda module, args, output: sizes.append(output.shape[-1])
        )
        crop = self.card.preprocessing.crop_size
        try:
            with torch.inference_mode():
                self.model(torch.zeros(1, 3, crop, crop, device=self.device, dtype=self.dtype))
        finally:
            handle.remove()
        return sizes[0]


def _peak_one(grid: torch.Tensor) -> np.ndarray:
    # a NaN (an overflow at reduced precision) counts as nothing rather than spoiling the grid
    grid = torch.nan_to_num(grid.detach().float(), nan=0.0, posinf=0.0).clamp(min=0).cpu()
    peak = grid.max()
    return (grid / peak if peak > 0 else grid).numpy()
