"""Transfer learning on an ImageFolder tree: a new head, labels from folder names, progress.

>>> model, card = finetune(FinetuneConfig(data=Path("photos/")))
>>> save_model(model, card)
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision import datasets
from torchvision.models import ResNet50_Weights
from torchvision.models.resnet import Bottleneck
from torchvision.transforms import v2

from classifier.artifact import ModelCard, WeightsSource, build_model
from classifier.cpu import cpu_supports_bf16
from classifier.preprocess import Preprocessing
from classifier.progress import progress

from .budget import steps_within
from .imagenet import load_torchvision_weights
from .steps import (
    flipped_and_turned,
    train_step,
    training_network,
    training_optimizer,
    training_precision,
)
from .whitening import whiten_convolution

WHITENING_IMAGES = 256  # 200,000 patches at 64 pixels, for the first convolution's 147 values


class FinetuneConfig(BaseModel):
    data: Path
    epochs: int = Field(3, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    warmup_fraction: float = Field(
        0.15, gt=0, lt=1, description="The share of steps the learning rate rises for."
    )
    batch_size: int = Field(32, ge=2)
    freeze_backbone: bool = True
    image_size: int = Field(224, ge=32)
    start_weights: Literal["imagenet", "file", "none"] = "imagenet"
    start_weights_file: Path | None = None
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    augment: bool = Field(True, description="Random crops, flips and colour jitter.")
    quarter_turns: bool = Field(
        False,
        description="Each image of a batch flipped and turned by a random multiple of 90 degrees: "
        "exact, free, and for labels that none of them changes (the demo's shapes).",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop early; for smoke tests.")
    time_budget_s: float | None = Field(
        None,
        gt=0,
        description="Train for about this long from the start: as many steps (at most max_steps, "
        "over as many passes as that takes) as the first ones' speed fits in what is left.",
    )
    min_steps: int | None = Field(
        None,
        ge=1,
        description="With a time budget, at least this many steps, past the budget on a machine "
        "slower than it was planned for.",
    )
    blocks_per_stage: int | None = Field(
        None,
        ge=1,
        description="From scratch only: train the first N residual blocks of each stage; the "
        "others stay exact identities and are skipped while training (see `first_blocks_only`).",
    )
    weights_source: WeightsSource = "finetune"


class TrainingResult(BaseModel):
    losses: list[float]
    validation_accuracy: float
    seconds: float


def finetune(
    config: FinetuneConfig, start_with: Collection[Path] = ()
) -> tuple[nn.Module, ModelCard, TrainingResult]:
    """Train a ResNet50 on `config.data` and return it with its card.

    `start_with`: images of `config.data` to train on before all the others (a curriculum, such
    as the demo's clean shapes), in random order; the rest follow in random order.
    """
    started = time.perf_counter()
    if config.blocks_per_stage and config.start_weights != "none":
        raise ValueError("blocks_per_stage is for training from scratch (start_weights none)")
    _seed_everything(config.seed)
    recipe = ResNet50_Weights.IMAGENET1K_V2
    preprocessing = Preprocessing.from_weights(recipe).at_size(config.image_size)

    train_set = datasets.ImageFolder(
        config.data, transform=_augment(preprocessing) if config.augment else preprocessing
    )
    validation_set = datasets.ImageFolder(config.data, transform=preprocessing)
    labels = train_set.classes
    if len(labels) < 2:
        raise ValueError(f"{config.data} needs at least two class folders, found {labels}")
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
    held = max(1, round(len(order) * config.validation_fraction))
    if len(order) - held < 2:
        raise ValueError(f"{config.data} has too few images to train on ({len(order)})")
    first = {Path(path) for path in start_with}
    train_loader = DataLoader(
        train_set,
        min(config.batch_size, len(order) - held),
        sampler=CurriculumSampler(
            order[held:].tolist(),
            first=[i for i, (path, _) in enumerate(train_set.samples) if Path(path) in first],
        ),
        drop_last=True,  # a last batch of one breaks BatchNorm
    )
    validation_loader = DataLoader(Subset(validation_set, order[:held].tolist()), 64)

    # a fresh model's stem is set from these (read only when training from scratch)
    stem_images = Subset(train_set, order[held:][:WHITENING_IMAGES].tolist())
    model, source_sha256 = _starting_model(config, len(labels), stem_images)
    total_steps = config.epochs * len(train_loader)
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    model = model.to(memory_format=torch.channels_last)

    losses: list[float] = []
    seconds_per_step = None
    with training_network(model, config.blocks_per_stage):
        optimizer = training_optimizer(model, config.learning_rate)
        if config.time_budget_s:  # at least until the steps are planned again
            total_steps = max(total_steps, REPLAN_AT + 1, config.min_steps or 0)
        # the warm-up is as long as planned; with a budget, the decay ends where it runs out
        warmup_steps = config.warmup_fraction * total_steps
        schedule = one_cycle(optimizer, config.learning_rate, total_steps, warmup_steps)
        replan_at = REPLAN_AT if config.time_budget_s else 0
        floored = False
        training_started = time.perf_counter()
        with progress(total_steps, "training") as bar:
            while len(losses) < total_steps:
                model.train()
                if config.freeze_backbone:
                    _freeze_batch_norm(model)
                for images, targets in train_loader:
                    if config.quarter_turns:
                        images = flipped_and_turned(images)
                    losses.append(train_step(model, optimizer, images, targets))
                    if len(losses) == TIMED_FROM:
                        timed_from = time.perf_counter()
                    if len(losses) == replan_at > TIMED_FROM:
                        # the budget's steps, at the speed the steps so far went, batches and all
                        now = time.perf_counter()
                        seconds_per_step = (now - timed_from) / (replan_at - TIMED_FROM)
                        left = config.time_budget_s - (now - started)
                        total_steps = replan_at + steps_within(left, seconds_per_step)
                        if total_steps < (config.min_steps or 0) and not floored:
                            floored = True  # once: the plan is made again every 100 steps
                            print(
                                f"\nthis machine is slower than planned for: {total_steps} "
                                f"steps fit in the {config.time_budget_s:.0f} s for training; "
                                f"training {config.min_steps}, past them",
                                flush=True,
                            )
                        total_steps = max(total_steps, config.min_steps or 0)
                        total_steps = min(total_steps, config.max_steps or total_steps)
                        schedule = one_cycle(
                            optimizer, config.learning_rate, total_steps, warmup_steps, replan_at
                        )
                        bar.set_total(total_steps)
                        replan_at = _next_replan(replan_at, total_steps)
                    else:
                        schedule.step()
                    bar.update(loss=f"{losses[-1]:.3f}")
                    if len(losses) >= total_steps:
                        break
        training_seconds = time.perf_counter() - training_started
        accuracy = evaluate(model, validation_loader)
    card = ModelCard(
        weights_source=config.weights_source,
        labels=labels,
        preprocessing=preprocessing,
        source_file_sha256=source_sha256,
        validation_accuracy=accuracy,
        training={
            **config.model_dump(mode="json", exclude={"data", "max_steps"}, exclude_none=True),
            "train_images": len(order) - held,
            "validation_images": held,
            "steps": len(losses),
            "training_seconds": round(training_seconds, 1),
            **({"seconds_per_step": round(seconds_per_step, 4)} if seconds_per_step else {}),
            "precision": training_precision(),
            "final_loss": losses[-1],
        },
    )
    return (
        model.eval(),
        card,
        TrainingResult(
            losses=losses, validation_accuracy=accuracy, seconds=time.perf_counter() - started
        ),
    )


# With a time budget, the steps are planned again once these have been timed (steps from the
# TIMED_FROM-th on: the first ones pick kernels and allocate); in the demo's warm-up, which is
# longer, so that its schedule goes on as one planned so from the start would
TIMED_FROM, REPLAN_AT = 10, 30
# and again every REPLAN_EVERY steps until the last tenth: a shared machine's speed moves by a
# quarter within minutes, and planned once a Zen 3's demo overran its 285 s by 33 s. Each time
# the decay is stretched or shortened by a few steps, too few to move the learning rate much
REPLAN_EVERY = 100


def _next_replan(done: int, total_steps: int) -> int:
    """The step to plan again at after `done` (0: none)."""
    later = done + REPLAN_EVERY
    return later if later < 0.9 * total_steps else 0


def one_cycle(
    optimizer: torch.optim.Optimizer,
    learning_rate: float,
    total_steps: int,
    warmup_steps: float,
    done: int = 0,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's one-cycle schedule over `total_steps`, warming up for `warmup_steps`, as it stands
    after `done` steps: made again with another total during the warm-up, it goes on exactly as
    one made with that total from the start would (its warm-up depends only on its length)."""
    total_steps = max(total_steps, done + 1, 2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, learning_rate, total_steps=total_steps, pct_start=warmup_steps / total_steps
    )
    for _ in range(done):
        schedule.step()
    return schedule


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy over a loader of (images, targets)."""
    model.eval()
    correct = total = 0
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=cpu_supports_bf16()):
        for images, targets in loader:
            correct += (model(images).argmax(1) == targets).sum().item()
            total += len(targets)
    return correct / max(total, 1)


class CurriculumSampler(Sampler[int]):
    """A new random order each epoch; in the first, the indices in `first` come before the rest."""

    def __init__(self, indices: list[int], first: Collection[int] = ()):
        self.indices, self.first, self.epoch = indices, set(first), 0

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        order = [self.indices[i] for i in torch.randperm(len(self.indices)).tolist()]
        if self.epoch == 0:
            # a stable sort: the first part and the rest each keep their random order
            order.sort(key=lambda index: index not in self.first)
        self.epoch += 1
        return iter(order)


def _starting_model(
    config: FinetuneConfig, num_classes: int, stem_images: Dataset
) -> tuple[nn.Module, str | None]:
    if config.start_weights == "none":
        return _fresh_model(num_classes, stem_images), None
    state_dict, _, source_sha256 = load_torchvision_weights(
        config.start_weights_file if config.start_weights == "file" else None
    )
    model = build_model(1000)
    model.load_state_dict(state_dict)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    if config.freeze_backbone:
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith("fc.")
    return model, source_sha256


# Each residual block's last BatchNorm scale, from scratch. build_model starts it at zero, so that
# a fresh ResNet50 is little more than its shortcuts (at one, torchvision's default, the demo
# scored 43% on the second renderer's shapes). But from exactly zero AdamW grows it by about the
# learning rate a step, and the blocks hardly take part for a hundred steps: at 64 pixels the demo
# scored 72% from zero and 92% from 0.1, with the same seed (docs/demo-model.md).
RESIDUAL_SCALE_FROM_SCRATCH = 0.1


def _fresh_model(num_classes: int, stem_images: Dataset) -> nn.Module:
    model = build_model(num_classes)
    for block in model.modules():
        if isinstance(block, Bottleneck):
            nn.init.constant_(block.bn3.weight, RESIDUAL_SCALE_FROM_SCRATCH)
    # the stem starts as a fixed whitening of the training images' patches rather than random,
    # from which a fresh model spent its first hundred steps near chance (train/whitening.py)
    whiten_convolution(model.conv1, torch.stack([image for image, _ in stem_images]))
    model.conv1.weight.requires_grad_(False)
    return model


def _augment(preprocessing: Preprocessing) -> v2.Compose:
    size = preprocessing.crop_size
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.85, 1.15), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.05),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(preprocessing.mean), list(preprocessing.std)),
        ]
    )


def _freeze_batch_norm(model: nn.Module) -> None:
    """A frozen backbone keeps its running statistics too."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
