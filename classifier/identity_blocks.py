"""Residual blocks whose weights make them the identity, skipped: the same answers, less work.

    >>> skip_identity_blocks(model)     # the demo's ResNet50 (see train/steps.py)
    12
    >>> residual_blocks(model)          # what is left to compute
    4

The demo trains the first block of each of the ResNet50's four stages and stores the twelve
others as exact identities, so that the stored model stays an ordinary torchvision ResNet50
state_dict. Served as stored, every request would still compute those twelve: three quarters of
the network's blocks, two thirds of its time, and half of what compiling it costs. A model whose
blocks all work (ImageNet's, a fine-tuned one) has none to skip and is served unchanged.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


def stages(model: nn.Module) -> tuple[nn.Sequential, ...]:
    """A torchvision ResNet's four stages of residual blocks."""
    return (model.layer1, model.layer2, model.layer3, model.layer4)


def is_identity(block: nn.Module) -> bool:
    """Whether a residual block computes its input, exactly.

    A block's output is ReLU(residual + shortcut). With an identity shortcut, and the residual
    branch ending in a BatchNorm of scale and shift zero, that is ReLU(0 + x): x itself, since
    x comes out of the ReLU before the block and is never negative. Inputs and gradients both
    pass unchanged, so answers and explanations are the same with the block or without it.
    """
    if isinstance(block, Bottleneck):
        last_norm = block.bn3
    elif isinstance(block, BasicBlock):
        last_norm = block.bn2
    else:
        return False
    if block.downsample is not None or not isinstance(last_norm, nn.BatchNorm2d):
        return False
    if last_norm.weight is None or last_norm.bias is None:
        return False
    return not last_norm.weight.any() and not last_norm.bias.any()


def skip_identity_blocks(model: nn.Module) -> int:
    """Replace `model`'s identity blocks (a torchvision ResNet) by `nn.Identity`, in place; how
    many. For serving only: the state_dict then lacks their (useless) weights."""
    skipped = 0
    for stage in stages(model):
        for index, block in enumerate(stage):
            if is_identity(block):
                stage[index] = nn.Identity()
                skipped += 1
    return skipped


def residual_blocks(model: nn.Module) -> int:
    """The residual blocks `model` computes."""
    return sum(not isinstance(block, nn.Identity) for stage in stages(model) for block in stage)
