"""The offline demo: render a shapes dataset, fine-tune on it, and test on unseen drawing styles."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, Field
from torch.utils.data import DataLoader
from torchvision import datasets

from .finetune import FinetuneConfig, evaluate, finetune
from .shapes import HELD_OUT_STYLES, write_dataset


class DemoConfig(BaseModel):
    per_class: int = Field(1500, ge=4, description="Images per shape (20% for validation).")
    held_out_per_class: int = Field(100, ge=1)
    image_size: int = Field(32, ge=32)
    epochs: int = Field(5, ge=1)
    learning_rate: float = 2e-3
    batch_size: int = 64
    seed: int = 0
    max_steps: int | None = None
    data: Path | None = Field(None, description="Keep the rendered images here.")


def train_demo(config: DemoConfig):
    """Returns (model, card, result, held_out_accuracy); the card records both accuracies."""
    with tempfile.TemporaryDirectory(prefix="shapes-") as scratch:
        root = Path(config.data or scratch)
        train_dir = write_dataset(
            root / "train", config.per_class, size=config.image_size, seed=config.seed
        )
        held_out_dir = write_dataset(
            root / "held-out", config.held_out_per_class, styles=HELD_OUT_STYLES,
            size=config.image_size, seed=config.seed + 1,
        )  # fmt: skip
        model, card, result = finetune(
            FinetuneConfig(
                data=train_dir,
                epochs=config.epochs,
                learning_rate=config.learning_rate,
                batch_size=config.batch_size,
                freeze_backbone=False,
                image_size=config.image_size,
                start_weights="none",
                seed=config.seed,
                max_steps=config.max_steps,
                augment=False,  # the renderer already varies everything a crop or jitter would
                weights_source="demo",
            )
        )
        held_out = datasets.ImageFolder(held_out_dir, transform=card.preprocessing)
        held_out_accuracy = evaluate(model, DataLoader(held_out, 64))
    card.training.update(
        {"held_out_styles": list(HELD_OUT_STYLES), "held_out_style_accuracy": held_out_accuracy}
    )
    return model, card, result, held_out_accuracy
