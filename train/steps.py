"""One training step, and what shapes it: the optimiser, the batch's flips and turns, and a
ResNet trained with the first blocks of each stage alone."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from classifier.cpu import cpu_supports_bf16


def training_precision() -> str:
    """What `train_step` trains in on this CPU: bf16 where the CPU has it natively, else fp32."""
    return "bf16" if cpu_supports_bf16() else "fp32"


def training_optimizer(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """AdamW over the parameters that train; fused: one kernel for all of them, a seventh of a
    step's time on the demo model."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=1e-4, fused=True)


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor
) -> float:
    """One optimisation step on a batch, in bf16 where the CPU has it natively (else fp32,
    which is then faster); returns the loss."""
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=cpu_supports_bf16()):
        loss = nn.functional.cross_entropy(model(images), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def flipped_and_turned(
    images: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(N, C, H, W) square images, each in one of its eight flips and quarter turns at random."""
    turns = torch.randint(0, 4, (len(images),), generator=generator)
    flips = torch.randint(0, 2, (len(images),), generator=generator).bool()
    images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    for turn in (1, 2, 3):
        chosen = turns == turn
        if chosen.any():
            images[chosen] = torch.rot90(images[chosen], turn, dims=(-2, -1))
    return images


@contextlib.contextmanager
def first_blocks_only(model: nn.Module, blocks_per_stage: int | None):
    """Within it, `model` (a ResNet) has only the first `blocks_per_stage` residual blocks of
    each stage: the others are exact identities, neither trained nor computed.

    A residual block whose last BatchNorm has scale and shift zero adds nothing to its shortcut,
    whose input, after a ReLU, the block's own ReLU then passes unchanged: the block is the
    identity. Those blocks are set so and, meanwhile, replaced by `nn.Identity`, which is the same
    function at none of the cost; afterwards they are back, and the ResNet50 computes what the
    shallow network learned. With one block a stage, a training step of the demo costs 2.6 times
    less, and in the same time it learns more than all sixteen blocks (docs/demo-model.md).
    """
    if not blocks_per_stage:
        yield model
        return
    skipped = []
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for index in range(blocks_per_stage, len(stage)):
            block = stage[index]
            nn.init.zeros_(block.bn3.weight)
            nn.init.zeros_(block.bn3.bias)
            block.requires_grad_(False)
            skipped.append((stage, index, block))
            stage[index] = nn.Identity()
    try:
        yield model
    finally:
        for stage, index, block in skipped:
            stage[index] = block.requires_grad_(True)
