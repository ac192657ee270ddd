"""Random-weight ResNet50s and their cards for tests, benchmarks and scripts: no download, no
training, the same weights for the same seed.

    >>> model, card = random_model(seed=3)              # five shape labels, 64 px, the demo's shape
    >>> network = random_network(1000)                  # every block at work: ImageNet's speed
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from classifier.artifact import ModelCard, WeightsSource, build_model
from classifier.identity_blocks import stages
from classifier.preprocess import Preprocessing

SHAPE_LABELS = ["circle", "cross", "square", "star", "triangle"]


def random_network(
    num_classes: int, *, seed: int = 0, blocks_per_stage: int | None = None
) -> nn.Module:
    """A ResNet50 with random weights whose residual blocks all work, or only the first
    `blocks_per_stage` of each stage: the others stay exact identities, as the demo stores them,
    and are skipped when served (`classifier.identity_blocks`)."""
    torch.manual_seed(seed)
    model = build_model(num_classes)  # every block the identity (zero_init_residual)
    with torch.no_grad():
        for stage in stages(model):
            for block in stage[:blocks_per_stage]:
                block.bn3.weight.uniform_(0.5, 1.5)  # so that it adds to its input
    return model.eval()


def random_model(
    labels: list[str] = SHAPE_LABELS,
    image_size: int = 64,
    seed: int = 0,
    source: WeightsSource = "demo",
    blocks_per_stage: int | None = 1,
) -> tuple[nn.Module, ModelCard]:
    """A random model and its card, for tests that need no accuracy: by default shaped as the
    demo is (one block a stage at work), which serves, warms up and compiles in a third of the
    time of all sixteen; `blocks_per_stage=None` for the full network."""
    model = random_network(len(labels), seed=seed, blocks_per_stage=blocks_per_stage)
    card = ModelCard(
        weights_source=source,
        labels=list(labels),
        preprocessing=Preprocessing.from_weights(ResNet50_Weights.IMAGENET1K_V2).at_size(
            image_size
        ),
    )
    return model, card
