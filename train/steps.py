"""One training step, and what shapes it: the optimiser, the batch's flips and turns, and a
ResNet trained with the first blocks of each stage alone, its smallest strided convolutions
as matmuls."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from classifier.cpu import cpu_supports_bf16
from classifier.identity_blocks import stages


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
    for stage in stages(model):
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


class ConvolutionAsMatmul(nn.Module):
    """A strided convolution as what it computes: each output pixel's patch of input pixels
    (a view, then one copy) times the weight matrix. The same function with the same parameter;
    in fp32 on AVX2, at the few pixels of a small input's last stages, its backward costs a third
    of oneDNN's, which took a third of the demo's training step there."""

    def __init__(self, convolution: nn.Conv2d) -> None:
        super().__init__()
        if convolution.bias is not None or convolution.groups != 1:
            raise ValueError(f"not a plain convolution: {convolution}")
        if convolution.dilation != (1, 1) or convolution.padding_mode != "zeros":
            raise ValueError(f"not a plain convolution: {convolution}")
        self.convolution = convolution

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        kernel_height, kernel_width = self.convolution.kernel_size
        stride_down, stride_across = self.convolution.stride
        pad_rows, pad_columns = self.convolution.padding
        padded = nn.functional.pad(images, (pad_columns, pad_columns, pad_rows, pad_rows))
        # (N, C, out rows, out columns, kernel rows, kernel columns), without a copy
        rows = padded.unfold(2, kernel_height, stride_down)
        patches = rows.unfold(3, kernel_width, stride_across)
        count, _, height, width = patches.shape[:4]
        # channels last, as the weight is laid out in channels_last memory (a view of it then)
        flattened = patches.permute(0, 2, 3, 4, 5, 1).reshape(count * height * width, -1)
        weight = self.convolution.weight.permute(0, 2, 3, 1).reshape(
            self.convolution.out_channels, -1
        )
        projected = flattened @ weight.t()
        return projected.view(count, height, width, -1).permute(0, 3, 1, 2)


# Where a ResNet's strided convolutions see the fewest pixels: its shortcuts' 1x1 projections and
# its last stage's 3x3 (at 48 pixels, 3x3 maps to 2x2). The second and third stages' 3x3 (12 and 6
# pixels across) measured no faster as matmuls
SMALLEST_STRIDED = ("layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0",
                    "layer4.0.conv2")  # fmt: skip


@contextlib.contextmanager
def strided_convolutions_as_matmuls(model: nn.Module, enabled: bool = True):
    """Within it, `model`'s (a ResNet's) SMALLEST_STRIDED convolutions are `ConvolutionAsMatmul`s
    of themselves; afterwards the convolutions are back, trained, the state_dict as it was."""
    swapped = [(name, model.get_submodule(name)) for name in SMALLEST_STRIDED if enabled]
    for name, convolution in swapped:
        model.set_submodule(name, ConvolutionAsMatmul(convolution))
    try:
        yield model
    finally:
        for name, convolution in swapped:
            model.set_submodule(name, convolution)


@contextlib.contextmanager
def training_network(model: nn.Module, blocks_per_stage: int | None):
    """`model` as a step trains it: from scratch, the first `blocks_per_stage` blocks of each
    stage (`first_blocks_only`), in fp32 with its smallest strided convolutions as matmuls
    (measured at the demo's 48 pixels; with bf16, and fine-tuning at 224, oneDNN's are kept)."""
    with first_blocks_only(model, blocks_per_stage):
        fp32 = training_precision() == "fp32"
        with strided_convolutions_as_matmuls(model, bool(blocks_per_stage) and fp32):
            yield model
