"""How many training steps a time budget buys on this CPU: measured, never assumed.

    >>> step = seconds_per_step(num_classes=5, image_size=48, batch_size=32, blocks_per_stage=1)
    >>> image = seconds_per_image(lambda n: draw_one(n))     # every core drawing
    >>> steps_within(budget_s=240, seconds_per_step=step + 17 * image)  # its new images too

A CPU with AVX-512 BF16 trains the demo's model in bf16 about three times as fast as a CPU with
AVX2 alone does in fp32; a fixed number of steps made the demo take 4 minutes on one and 16 on
the other. A budget in seconds takes the same time on both, and each trains as far as it can.
The first estimate (before anything is drawn) decides how many images to draw; training then
times its own first steps, batches read from disk and all, and plans what the rest buys
(`train/finetune.py`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

from classifier.artifact import build_model

from .steps import train_step, training_network, training_optimizer

WARM_UP_STEPS = 1  # oneDNN picks its kernels and allocates on the first step at a size
TIMED_STEPS = 3


def seconds_per_step(
    *,
    num_classes: int,
    image_size: int,
    batch_size: int,
    blocks_per_stage: int | None,
    network=training_network,
    timed_steps: int = TIMED_STEPS,
) -> float:
    """One training step of a fresh ResNet50 as the demo trains it (or as `network(model,
    blocks_per_stage)` makes it), on random images (a step costs the same whatever they show),
    over `timed_steps`; the generators training uses are left as they were."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(num_classes).to(memory_format=torch.channels_last).train()
        model.conv1.weight.requires_grad_(False)  # as the whitened stem is
        images = torch.randn(batch_size, 3, image_size, image_size)
    targets = torch.arange(batch_size) % num_classes
    with network(model, blocks_per_stage):
        optimizer = training_optimizer(model, 1e-3)
        for _ in range(WARM_UP_STEPS):
            train_step(model, optimizer, images, targets)
        started = time.perf_counter()
        for _ in range(timed_steps):
            train_step(model, optimizer, images, targets)
    return (time.perf_counter() - started) / timed_steps


def seconds_per_image(draw: Callable[[int], object], *, samples: int = 48) -> float:
    """What drawing one image costs with every core drawing: `draw(n)` timed here for a few n,
    divided among the cores."""
    started = time.perf_counter()
    for n in range(samples):
        draw(n)
    return (time.perf_counter() - started) / samples / len(os.sched_getaffinity(0))


def steps_within(budget_s: float, seconds_per_step: float, *, at_least: int = 1) -> int:
    """The steps that fit in `budget_s` seconds at that speed."""
    return max(at_least, int(budget_s / seconds_per_step))
