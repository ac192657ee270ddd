"""Start a fresh network's first convolution as a whitening of the training images' patches.

From random filters, the demo's ResNet50, trained from scratch, spent its first hundred steps
near chance. Filters that whiten the images' patches (the patches projected on their strongest
principal directions, each scaled to unit variance, in both signs) pass every strong direction
on from the first step. On the demo's clean shapes the loss over steps 80 to 100 fell from 1.40
to 0.47, and kept fixed the stem did better than left to train (0.19 against 0.28 by step 160;
docs/demo-model.md). The trick is from the fast CIFAR-10 training records (Page's DAWNBench
ResNet, Keller Jordan's airbench).
"""

from __future__ import annotations

import torch
from torch import nn

# added to each direction's variance before scaling to one, so that the weakest directions kept
# (on images of plain shapes: nearly flat patches) are not amplified into noise
VARIANCE_FLOOR = 5e-4


@torch.no_grad()
def whiten_convolution(convolution: nn.Conv2d, images: torch.Tensor) -> None:
    """Set `convolution`'s filters to whiten its patches of `images` (N, C, H, W), as normalised
    for the model: half its filters are the strongest principal directions, half their negatives
    (so that a ReLU after it keeps both signs)."""
    size, stride = convolution.kernel_size, convolution.stride
    if convolution.groups != 1 or convolution.out_channels % 2:
        raise ValueError("needs an ungrouped convolution with an even number of filters")
    values = convolution.in_channels * size[0] * size[1]
    sums = torch.zeros(values, dtype=torch.float64)
    products = torch.zeros(values, values, dtype=torch.float64)
    count = 0
    for chunk in images.split(16):  # a few at a time: at 224 pixels each has 12,000 patches
        patches = nn.functional.unfold(chunk.double(), size, stride=stride)  # (n, values, L)
        patches = patches.transpose(1, 2).reshape(-1, values)
        sums += patches.sum(0)
        products += patches.T @ patches
        count += len(patches)
    mean = sums / count
    covariance = products / count - torch.outer(mean, mean)
    variances, directions = torch.linalg.eigh(covariance)  # ascending
    kept = convolution.out_channels // 2
    if kept > len(variances):
        raise ValueError(
            f"{convolution.out_channels} filters, but patches have {len(variances)} values"
        )
    variances, directions = variances[-kept:].flip(0), directions[:, -kept:].flip(1)
    filters = directions.T / (variances.clamp(min=0) + VARIANCE_FLOOR).sqrt()[:, None]
    convolution.weight.copy_(torch.cat([filters, -filters]).reshape_as(convolution.weight))
    if convolution.bias is not None:
        convolution.bias.zero_()
